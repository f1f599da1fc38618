// Command longrunning shows a job that runs longer than the consumer group's
// session timeout, in long-running mode (Karafka's Long-Running Jobs): the
// member keeps its place in the group while the job runs, a revocation does
// not wait for the job, and the job sees the revocation (jobs.Revoked) and
// stops early at a checkpoint. Its offset is not committed, so the
// partition's next owner runs it again, and it resumes from the checkpoint.
//
// The program runs server A until the export is under way, stops A (as a
// deploy would), then starts server B in the same group, which finishes the
// export.
//
//	go run ./examples/longrunning
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// ExportArgs is a long job: export a report in steps.
type ExportArgs struct {
	Report string `msgpack:"report"`
	Steps  int    `msgpack:"steps"`
}

func (ExportArgs) Kind() string { return "export_report" }

// ExportWorker runs exports in long-running mode and checkpoints each step.
type ExportWorker struct {
	jobs.WorkerDefaults[ExportArgs]
	Server string
	Step   time.Duration
	Store  *Checkpoints
	Out    io.Writer
	// Progress gets each finished step.
	Progress chan<- int
}

// LongRunning puts export_report in long-running mode.
func (*ExportWorker) LongRunning() bool { return true }

// Work resumes at the checkpoint and stops early when the partition is
// revoked: the job runs again on the next owner, so returning an error
// here only ends this run.
func (w *ExportWorker) Work(ctx context.Context, job *jobs.Job[ExportArgs]) error {
	step := w.Store.Get(job.ID)
	fmt.Fprintf(w.Out, "server %s: export %q starts at step %d/%d (attempt %d)\n", w.Server, job.Args.Report, step, job.Args.Steps, job.Attempt)
	for ; step < job.Args.Steps; step++ {
		select {
		case <-time.After(w.Step): // one step of the export
		case <-ctx.Done(): // the grace period after a revocation is over
		}
		if jobs.Revoked(ctx) || ctx.Err() != nil {
			fmt.Fprintf(w.Out, "server %s: partition revoked at step %d: checkpoint saved, stopping early\n", w.Server, step)
			return fmt.Errorf("export %q stopped at step %d: partition revoked", job.Args.Report, step)
		}
		w.Store.Set(job.ID, step+1)
		if step+1 < job.Args.Steps {
			w.Progress <- step + 1
		}
	}
	fmt.Fprintf(w.Out, "server %s: export %q done\n", w.Server, job.Args.Report)
	w.Progress <- job.Args.Steps
	return nil
}

// Checkpoints is the export's progress store (a database in a real service).
type Checkpoints struct {
	mu    sync.Mutex
	steps map[string]int
}

func (c *Checkpoints) Get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.steps[id]
}

func (c *Checkpoints) Set(id string, step int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps[id] = step
}

func main() {
	steps := flag.Int("steps", 40, "steps of the export")
	step := flag.Duration("step", 250*time.Millisecond, "duration of one step")
	flag.Parse()
	if err := run(os.Stdout, *steps, *step); err != nil {
		fmt.Fprintln(os.Stderr, "longrunning:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, steps int, step time.Duration) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	topic := "exports-" + rand.Text()[:8]
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()

	store := &Checkpoints{steps: map[string]int{}}
	progress := make(chan int, steps)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	// serve runs server name in the group until until returns, then stops it.
	serve := func(name string, until func() error) (err error) {
		workers := jobs.NewWorkers()
		if err := jobs.AddWorker(workers, &ExportWorker{Server: name, Step: step, Store: store, Out: out, Progress: progress}); err != nil {
			return err
		}
		server, err := jobs.NewServer(jobs.Config{
			Brokers: brokers, Group: "exporter-" + topic, Topics: []string{topic}, Workers: workers,
			// The export runs longer than the session timeout: heartbeats
			// go on while it runs, so the member stays in the group.
			SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond,
			LongRunningGrace: 2 * time.Second,
			CreateTopics:     &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
			Logger:           logger,
		})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, server.Stop(context.Background())) }()
		if err := server.Start(ctx); err != nil {
			return err
		}
		return until()
	}
	// progressed waits until the export has done n steps.
	progressed := func(n int) error {
		for done := 0; done < n; {
			select {
			case done = <-progress:
			case <-ctx.Done():
				return fmt.Errorf("export did not reach step %d: %w", n, ctx.Err())
			}
		}
		return nil
	}

	// Server A takes the export and is stopped a third of the way through,
	// as a deploy would.
	err = serve("A", func() error {
		if _, err := client.Enqueue(ctx, ExportArgs{Report: "yearly", Steps: steps}); err != nil {
			return err
		}
		return progressed(steps / 3)
	})
	if err != nil {
		return err
	}
	// Server B, in the same group, resumes it at the checkpoint.
	return serve("B", func() error { return progressed(steps) })
}
