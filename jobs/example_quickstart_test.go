package jobs_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// WelcomeArgs is a job: send a user a welcome email.
type WelcomeArgs struct {
	Email string `msgpack:"email"`
}

func (WelcomeArgs) Kind() string { return "welcome" }

// The README's quickstart: define a job, enqueue it, run it. (Brokers comes
// from an in-process broker here; in a service it names your Kafka cluster.)
func Example_quickstart() {
	broker, _ := kafka.StartEmbeddedBroker()
	defer broker.Close()
	brokers, ctx := broker.Addrs(), context.Background()
	// The jobs' topic, and the dead-letter topic where jobs go that cannot
	// succeed: Start checks that both exist.
	kafka.NewAdmin(brokers).CreateTopics(ctx,
		kafka.Topic{Name: "mail", Partitions: 3}, kafka.Topic{Name: "mail.dlq", Partitions: 1})

	done := make(chan struct{})
	workers := jobs.NewWorkers()
	jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[WelcomeArgs]) error {
		fmt.Println("welcome,", job.Args.Email)
		close(done)
		return nil
	}))
	server, _ := jobs.NewServer(jobs.Config{Brokers: brokers, Group: "mailer", Topics: []string{"mail"},
		Workers: workers, Logger: slog.New(slog.DiscardHandler)})
	server.Start(ctx)
	defer server.Stop(ctx)

	client, _ := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: "mail"})
	defer client.Close()
	client.Enqueue(ctx, WelcomeArgs{Email: "ada@example.com"})
	<-done
	// Output: welcome, ada@example.com
}
