// Command orders is ordo's demo (make demo): it enqueues order updates for
// many users with the user id as partitioner, processes them with a Server
// whose virtual partitions run each user's updates one at a time in order and
// different users concurrently under one process-wide limit, shows a live
// progress line, and checks from what actually ran that nothing was lost,
// duplicated or reordered. The progress line comes from Server.Stats.
//
//	go run ./examples/orders            # embedded broker
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/orders
//	go run ./examples/orders -max-virtual-partitions 16   # Karafka's max_partitions
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
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// OrderUpdate is one job: an update to a user's order.
type OrderUpdate struct {
	UserID string `msgpack:"user_id"`
	Seq    int    `msgpack:"seq"` // per user, in enqueue order
	Status string `msgpack:"status"`
}

// Kind names the job type.
func (OrderUpdate) Kind() string { return "order_update" }

// Partitioning sends all of a user's updates to one partition with the user
// id as key, so they run one at a time in enqueue order.
func (u OrderUpdate) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: u.UserID} }

// options are the demo's knobs.
type options struct {
	jobs, users, partitions, concurrency int
	// maxVirtualPartitions caps the virtual partitions per partition; 0
	// gives every user one of its own.
	maxVirtualPartitions int
	work                 time.Duration
	// progressEvery is the progress line's refresh interval.
	progressEvery time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.jobs, "jobs", 20_000, "order updates to enqueue")
	flag.IntVar(&o.users, "users", 500, "distinct users")
	flag.IntVar(&o.partitions, "partitions", 8, "partitions of the demo topic")
	flag.IntVar(&o.concurrency, "concurrency", 100, "jobs running at once")
	flag.IntVar(&o.maxVirtualPartitions, "max-virtual-partitions", 0, "virtual partitions per partition (0: one per user)")
	flag.DurationVar(&o.work, "work", time.Millisecond, "time each job takes")
	flag.DurationVar(&o.progressEvery, "progress", 250*time.Millisecond, "progress line refresh interval")
	flag.Parse()
	if err := run(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, o options) (err error) {
	n, users := o.jobs, o.users
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// Fresh names per run: runs on a shared broker never see each other's jobs.
	suffix := rand.Text()[:8]
	topic, group := "orders-"+suffix, "orders-demo-"+suffix

	ledger := newLedger()
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[OrderUpdate]) error {
		ledger.start(job.Args)
		time.Sleep(o.work)
		ledger.end(job.Args)
		return nil
	}))
	if err != nil {
		return err
	}
	// Virtual partitions: each user (the message key) is a key actor of its
	// partition, so one user's updates run in order while the users of a
	// partition run concurrently.
	server, err := jobs.NewServer(jobs.Config{
		Brokers:              brokers,
		Group:                group,
		Topics:               []string{topic},
		Workers:              workers,
		Concurrency:          o.concurrency,
		MaxVirtualPartitions: o.maxVirtualPartitions,
		CreateTopics:         &jobs.TopicSpec{Partitions: o.partitions, ReplicationFactor: 1},
		Logger:               logger,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(context.Background())) }()
	if err := server.Start(ctx); err != nil {
		return err
	}

	fmt.Fprintf(out, "demo: enqueueing %d order updates for %d users to %s (%d partitions, user id as partitioner)\n",
		n, users, topic, o.partitions)
	began := time.Now()
	if err := enqueue(ctx, brokers, topic, n, users); err != nil {
		return err
	}
	tick := time.NewTicker(o.progressEvery)
	defer tick.Stop()
	p := progress{out: out, server: server, ledger: ledger, n: n, at: began}
	for ledger.done.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v with %d of %d jobs done", time.Since(began), ledger.done.Load(), n)
		case <-tick.C:
			p.print()
		}
	}
	elapsed := time.Since(began)
	// Every job ran; show the lag fall to zero as the last offsets commit.
	for p.print() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("offsets not committed after %v", time.Since(began))
		case <-tick.C:
		}
	}
	fmt.Fprintln(out)
	lost, violations, dups := ledger.verify(n, users)
	fmt.Fprintf(out, "demo: jobs=%d users=%d lost=%d order_violations=%d duplicates=%d jobs/s=%.0f\n",
		n, users, lost, violations, dups, float64(n)/elapsed.Seconds())
	if lost+violations > 0 {
		return fmt.Errorf("invariants broken: lost=%d order_violations=%d", lost, violations)
	}
	return nil
}

func enqueue(ctx context.Context, brokers []string, topic string, n, users int) (err error) {
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	seq := make([]int, users)
	params := make([]jobs.EnqueueParams, 0, n)
	for i := range n {
		u := i % users
		params = append(params, jobs.EnqueueParams{Args: OrderUpdate{UserID: fmt.Sprintf("user-%d", u), Seq: seq[u], Status: "updated"}})
		seq[u]++
	}
	_, err = client.EnqueueMany(ctx, params)
	return err
}

// progress prints the live progress line: jobs/s since the previous line,
// jobs running, jobs buffered, and the group's lag (records not yet
// committed, from each partition's high watermark and committed offset).
type progress struct {
	out    io.Writer
	server *jobs.Server
	ledger *ledger
	n      int
	at     time.Time
	done   int64
	rate   float64
}

func (p *progress) print() (lag int64) {
	var inflight, buffered int
	lag = int64(p.n) // until the partitions are assigned
	stats := p.server.Stats()
	if len(stats) > 0 {
		lag = 0
	}
	for _, s := range stats {
		inflight += s.InFlight
		buffered += s.Buffered
		if s.HighWatermark >= 0 {
			lag += max(0, s.HighWatermark-max(0, s.Committed))
		}
	}
	now, done := time.Now(), p.ledger.done.Load()
	if done > p.done || done < int64(p.n) { // once all ran, keep the last rate
		p.rate = float64(done-p.done) / now.Sub(p.at).Seconds()
	}
	p.at, p.done = now, done
	rate := p.rate
	fmt.Fprintf(p.out, "\rdemo: %6d/%d done  %7.0f jobs/s  in flight %3d  buffered %5d  lag %6d",
		done, p.n, rate, inflight, buffered, lag)
	return lag
}

// ledger records what actually ran, per user.
type ledger struct {
	mu      sync.Mutex
	seqs    map[string][]int
	running map[string]bool
	overlap int
	done    atomic.Int64
}

func newLedger() *ledger { return &ledger{seqs: map[string][]int{}, running: map[string]bool{}} }

func (l *ledger) start(u OrderUpdate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[u.UserID] {
		l.overlap++
	}
	l.running[u.UserID] = true
	l.seqs[u.UserID] = append(l.seqs[u.UserID], u.Seq)
}

func (l *ledger) end(u OrderUpdate) {
	l.mu.Lock()
	l.running[u.UserID] = false
	l.mu.Unlock()
	l.done.Add(1)
}

// verify counts jobs never run, runs out of enqueue order per user (and
// overlapping runs of one user), and runs beyond the first.
func (l *ledger) verify(n, users int) (lost, violations, duplicates int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	violations = l.overlap
	ran := 0
	for _, seqs := range l.seqs {
		seen := map[int]bool{}
		for i, s := range seqs {
			if seen[s] {
				duplicates++
				continue
			}
			seen[s] = true
			ran++
			if i > 0 && s < seqs[i-1] {
				violations++
			}
		}
	}
	return n - ran, violations, duplicates
}
