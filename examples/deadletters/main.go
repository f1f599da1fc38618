// Command deadletters shows what happens to a job that cannot succeed: it is
// retried with backoff while its key waits (other keys go on), and after its
// last attempt it goes to the dead-letter topic with headers that say where
// it came from and why it failed. The program then reads the dead-letter
// topic and prints them.
//
//	go run ./examples/deadletters
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/examples/internal/exampleenv"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
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

func (*ChargeWorker) Backoff() supervision.Backoff {
	return supervision.Backoff{Initial: 100 * time.Millisecond, Max: 100 * time.Millisecond}
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

func run(out io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := "charges-" + exampleenv.Suffix()
	dlq := topic + ".dlq"
	brokers, stop, err := exampleenv.Kafka(ctx, kafka.Topic{Name: topic, Partitions: 2}, kafka.Topic{Name: dlq, Partitions: 1})
	if err != nil {
		return err
	}
	defer stop()

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer client.Close()
	cards := []string{"4242-4242-4242-4242", "4000-0000-0000-0002", "5555-5555-5555-4444"}
	for _, card := range cards {
		if _, err := client.Enqueue(ctx, ChargeArgs{Card: card, Cents: 1999}); err != nil {
			return err
		}
	}

	worker := &ChargeWorker{}
	workers := jobs.NewWorkers()
	if err := jobs.AddWorker(workers, worker); err != nil {
		return err
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "billing-" + topic, Topics: []string{topic}, Workers: workers,
		DeadLetterTopic: dlq, // the default: the first topic + ".dlq"
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 1})),
	})
	if err != nil {
		return err
	}
	if err := server.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = server.Stop(context.Background()) }()

	// Read the dead-letter topic as any consumer would.
	letter, err := readOne(ctx, brokers, dlq)
	if err != nil {
		return err
	}
	// The declined card's key waited through its retries; the others did not.
	for worker.charged.Load() < int64(len(cards)-1) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintf(out, "charged %d of %d cards; dead letter at %s/%d@%d:\n", worker.charged.Load(), len(cards), letter.Topic, letter.Partition, letter.Offset)
	for _, h := range letter.Headers {
		fmt.Fprintf(out, "  %-22s %s\n", h.Key, h.Value)
	}
	env, err := jobs.DecodeEnvelope(letter.Value)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  (value: the job's envelope unchanged: kind %s, id %s)\n", env.Kind, env.ID)
	return server.Stop(ctx)
}

// readOne returns the first record of topic, waiting for it.
func readOne(ctx context.Context, brokers []string, topic string) (kafka.Record, error) {
	consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{Brokers: brokers, Group: "dlq-reader-" + topic, Topics: []string{topic},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return kafka.Record{}, err
	}
	var got kafka.Record
	found := false
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	err = consumer.Run(runCtx, func(sess *kafka.Session) {
		for _, claim := range sess.Claims() {
			defer claim.Close()
			for !found {
				records, _, err := claim.Fetch(runCtx, nil, 1)
				if err != nil {
					return
				}
				if len(records) > 0 {
					got, found = records[0], true
					stopRun()
				}
			}
		}
	})
	if !found {
		return got, errors.Join(err, ctx.Err(), errors.New("no dead letter arrived"))
	}
	return got, nil
}
