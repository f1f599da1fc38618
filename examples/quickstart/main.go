// Command quickstart is the smallest useful ordo program: one job type, a
// client that enqueues, a server that runs the jobs.
//
//	go run ./examples/quickstart            # embedded broker
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/quickstart
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// WelcomeArgs is a job: send a user a welcome email. Jobs of one user run
// one at a time, in order.
type WelcomeArgs struct {
	User  string `msgpack:"user"`
	Email string `msgpack:"email"`
}

func (WelcomeArgs) Kind() string { return "welcome_email" }

func (a WelcomeArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.User} }

func main() {
	if err := run(os.Stdout, 3); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, n int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	topic := "welcome-" + rand.Text()[:8]

	// The worker: what a job does.
	sent := make(chan string)
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[WelcomeArgs]) error {
		select {
		case sent <- job.Args.Email:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	if err != nil {
		return err
	}

	// The server: consumes the topic as a member of a consumer group. Start
	// creates the topic and its dead-letter topic (topic + ".dlq").
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "mailer-" + topic, Topics: []string{topic}, Workers: workers,
		CreateTopics: &jobs.TopicSpec{Partitions: 3, ReplicationFactor: 1},
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(context.Background())) }()
	if err := server.Start(ctx); err != nil {
		return err
	}

	// The client: enqueues jobs, from anywhere in your service.
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	for i := range n {
		info, err := client.Enqueue(ctx, WelcomeArgs{User: fmt.Sprint("user-", i), Email: fmt.Sprintf("user%d@example.com", i)})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "enqueued %s job %s to partition %d\n", info.Kind, info.ID, info.Partition)
	}
	for range n {
		select {
		case email := <-sent:
			fmt.Fprintln(out, "sent welcome email to", email)
		case <-ctx.Done():
			return fmt.Errorf("jobs did not run: %w", ctx.Err())
		}
	}
	return nil
}
