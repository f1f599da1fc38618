package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// The README's quickstart: define a job, enqueue it, run it. The README
// shows the same program, with main in place of this function.
func Example_quickstart() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
	// Output: welcome, ada@example.com
}

// WelcomeArgs is a job: send a user a welcome email.
type WelcomeArgs struct {
	Email string `msgpack:"email"`
}

func (WelcomeArgs) Kind() string { return "welcome" }

func run() (err error) {
	broker, err := kafkaembed.Start() // in a service: your cluster's addresses
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers, ctx := broker.Addrs(), context.Background()

	done := make(chan struct{})
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[WelcomeArgs]) error {
		fmt.Println("welcome,", job.Args.Email)
		close(done)
		return nil
	}))
	if err != nil {
		return err
	}
	// Start creates the jobs' topic, the dead-letter topic (mail.dlq),
	// where jobs go that cannot succeed, and the schedules topic
	// (mail.schedule), where jobs enqueued WithDelay wait. A broker it
	// cannot reach is logged at WARN on each retry, and Start fails after
	// a minute (Config.StartTimeout) with an error naming it.
	server, err := jobs.NewServer(jobs.Config{Brokers: brokers, Group: "mailer", Topics: []string{"mail"},
		Workers: workers, CreateTopics: &jobs.TopicSpec{Partitions: 3, ReplicationFactor: 1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(ctx)) }()
	if err := server.Start(ctx); err != nil {
		return err
	}

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: "mail"})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	if _, err := client.Enqueue(ctx, WelcomeArgs{Email: "ada@example.com"}); err != nil {
		return err
	}
	<-done
	return nil
}
