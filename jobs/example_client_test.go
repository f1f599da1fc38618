package jobs_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// WelcomeEmailArgs is a job: send a user the welcome email.
type WelcomeEmailArgs struct {
	UserID string `msgpack:"user_id"`
	Email  string `msgpack:"email"`
}

func (WelcomeEmailArgs) Kind() string { return "welcome_email" }

// A user's emails go out one at a time, in the order they were enqueued.
func (a WelcomeEmailArgs) Partitioning() jobs.Partitioning {
	return jobs.Partitioning{Value: a.UserID}
}

// Enqueue a job, and once more with options that override its partitioning
// for one call. Both land on the partition a Java producer would pick for
// "user-42". (The example starts an in-process broker, and a server that
// creates the topic and runs the jobs; in a service, Brokers names your Kafka
// cluster.)
func ExampleClient_Enqueue() {
	broker, err := kafkaembed.Start()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[WelcomeEmailArgs]) error {
		return nil // send the email
	}))
	if err != nil {
		panic(err)
	}
	server, err := jobs.NewServer(jobs.Config{Brokers: broker.Addrs(), Group: "mailer", Topics: []string{"emails"},
		Workers: workers, CreateTopics: &jobs.TopicSpec{Partitions: 12, ReplicationFactor: 1},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer func() {
		if err := server.Stop(ctx); err != nil {
			panic(err)
		}
	}()

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: broker.Addrs(), Topic: "emails"})
	if err != nil {
		panic(err)
	}
	defer func() {
		if err := client.Close(); err != nil {
			panic(err)
		}
	}()

	info, err := client.Enqueue(ctx, WelcomeEmailArgs{UserID: "user-42", Email: "ada@example.com"})
	if err != nil {
		panic(err)
	}
	fmt.Println(info.Kind, "key", info.Key, "partition", info.Partition, "offset", info.Offset)

	info, err = client.Enqueue(ctx, WelcomeEmailArgs{UserID: "user-42", Email: "ada@example.com"},
		jobs.WithPartitionKey("user-42"), jobs.WithMetadata(map[string]string{"campaign": "spring"}))
	if err != nil {
		panic(err)
	}
	fmt.Println(info.Kind, "partition key", info.PartitionKey, "partition", info.Partition, "offset", info.Offset)
	// Output:
	// welcome_email key user-42 partition 4 offset 0
	// welcome_email partition key user-42 partition 4 offset 1
}
