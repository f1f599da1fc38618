// Command deadletters shows what happens to a job that cannot succeed: it is
// retried with backoff while its key waits (other keys go on), and after its
// last attempt it goes to the dead-letter topic with headers that say where
// it came from and why it failed. The program then reads the dead-letter
// topic back with a second Server, whose worker sees those headers on the
// job, and prints them.
//
//	go run ./examples/deadletters
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// ChargeArgs charges a card; card "4000-0000-0000-0002" is always declined.
type ChargeArgs struct {
	Card  string `msgpack:"card"`
	Cents int64  `msgpack:"cents"`
}

func (ChargeArgs) Kind() string { return "charge_card" }

func (a ChargeArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Card} }

// ChargeWorker gets three attempts, 100 ms apart, before giving up.
type ChargeWorker struct {
	jobs.WorkerDefaults[ChargeArgs]
	charged atomic.Int64
}

func (*ChargeWorker) MaxAttempts() int { return 3 }

func (*ChargeWorker) Backoff() jobs.Backoff {
	return jobs.Backoff{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond}
}

func (w *ChargeWorker) Work(ctx context.Context, job *jobs.Job[ChargeArgs]) error {
	if job.Args.Card == "4000-0000-0000-0002" {
		return errors.New("card declined")
	}
	w.charged.Add(1)
	return nil
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "deadletters:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	topic := "charges-" + rand.Text()[:8]
	dlq := topic + ".dlq" // the default: the first topic + ".dlq"
	// The failing card's retries log errors; the output shows the outcome.
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1}))

	worker := &ChargeWorker{}
	workers := jobs.NewWorkers()
	if err := jobs.AddWorker(workers, worker); err != nil {
		return err
	}
	billing, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "billing-" + topic, Topics: []string{topic}, Workers: workers,
		DeadLetterTopic: dlq,
		CreateTopics:    &jobs.TopicSpec{Partitions: 2, ReplicationFactor: 1},
		Logger:          quiet,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, billing.Stop(context.Background())) }()
	if err := billing.Start(ctx); err != nil {
		return err
	}

	// Read the dead-letter topic back as jobs: a dead letter is the job's
	// record unchanged plus headers, so a worker for the same args sees it,
	// and the headers are on the job.
	letters := make(chan *jobs.Job[ChargeArgs], 1)
	readers := jobs.NewWorkers()
	err = jobs.AddWorker(readers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[ChargeArgs]) error {
		select {
		case letters <- job:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	if err != nil {
		return err
	}
	reader, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "dlq-reader-" + topic, Topics: []string{dlq}, Workers: readers,
		DeadLetterTopic: dlq + ".dlq",
		CreateTopics:    &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		Logger:          quiet,
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, reader.Stop(context.Background())) }()
	if err := reader.Start(ctx); err != nil {
		return err
	}

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	cards := []string{"4242-4242-4242-4242", "4000-0000-0000-0002", "5555-5555-5555-4444"}
	for _, card := range cards {
		if _, err := client.Enqueue(ctx, ChargeArgs{Card: card, Cents: 1999}); err != nil {
			return err
		}
	}

	var letter *jobs.Job[ChargeArgs]
	select {
	case letter = <-letters:
	case <-ctx.Done():
		return fmt.Errorf("no dead letter arrived: %w", ctx.Err())
	}
	// The declined card's key waited through its retries; the others did not.
	for worker.charged.Load() < int64(len(cards)-1) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d good cards charged: %w", worker.charged.Load(), len(cards)-1, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	fmt.Fprintf(out, "charged %d of %d cards; dead letter at %s/%d@%d:\n", worker.charged.Load(), len(cards), letter.Topic, letter.Partition, letter.Offset)
	for _, h := range letter.Headers {
		fmt.Fprintf(out, "  %-22s %s\n", h.Key, h.Value)
	}
	fmt.Fprintf(out, "  (the job as enqueued: id %s, args %+v)\n", letter.ID, letter.Args)
	return nil
}
