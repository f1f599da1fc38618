package jobs_test

import (
	"context"
	"fmt"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
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
// "user-42". (The example starts an in-process broker and creates the topic;
// in a service, Brokers names your Kafka cluster.)
func ExampleClient_Enqueue() {
	broker, err := kafka.StartEmbeddedBroker()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()
	if err := kafka.NewAdmin(broker.Addrs()).CreateTopics(ctx, kafka.Topic{Name: "emails", Partitions: 12}); err != nil {
		panic(err)
	}

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: broker.Addrs(), Topic: "emails"})
	if err != nil {
		panic(err)
	}
	defer client.Close()

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
