package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// GreetArgs is a job: greet a user. All of a user's greetings run in order.
type GreetArgs struct {
	User string `msgpack:"user"`
	N    int    `msgpack:"n"`
}

func (GreetArgs) Kind() string { return "greet" }

func (a GreetArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.User} }

// Enqueue jobs with a Client, run them with a Server: one user's jobs run one
// at a time, in enqueue order. (The example starts an in-process broker; in a
// service, Brokers names your Kafka cluster.)
func ExampleServer() {
	broker, err := kafkaembed.Start()
	if err != nil {
		panic(err)
	}
	defer broker.Close()
	ctx := context.Background()

	greeted := make(chan string, 3)
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[GreetArgs]) error {
		greeted <- fmt.Sprintf("hello %s #%d", job.Args.User, job.Args.N)
		return nil
	}))
	if err != nil {
		panic(err)
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers: broker.Addrs(),
		Group:   "greeter",
		Topics:  []string{"greetings"},
		Workers: workers,
		// Start creates what is missing: here greetings and its
		// dead-letter topic, greetings.dlq.
		CreateTopics: &jobs.TopicSpec{Partitions: 3, ReplicationFactor: 1},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := server.Start(ctx); err != nil {
		panic(err)
	}

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: broker.Addrs(), Topic: "greetings"})
	if err != nil {
		panic(err)
	}
	for n := 1; n <= 3; n++ {
		if _, err := client.Enqueue(ctx, GreetArgs{User: "ada", N: n}); err != nil {
			panic(err)
		}
	}
	if err := client.Close(); err != nil {
		panic(err)
	}
	for range 3 {
		select {
		case g := <-greeted:
			fmt.Println(g)
		case <-time.After(30 * time.Second):
			panic("a greeting did not run within 30 s")
		}
	}
	if err := server.Stop(ctx); err != nil {
		panic(err)
	}
	// Output:
	// hello ada #1
	// hello ada #2
	// hello ada #3
}

// A worker with its own retry policy, timeout and per-key state.
type ChargeArgs struct {
	Account string `msgpack:"account"`
	Cents   int64  `msgpack:"cents"`
}

func (ChargeArgs) Kind() string { return "charge" }

type ChargeWorker struct {
	jobs.WorkerDefaults[ChargeArgs]
}

func (*ChargeWorker) MaxAttempts() int       { return 10 }
func (*ChargeWorker) Timeout() time.Duration { return 5 * time.Second }

type balance struct {
	loaded bool
	cents  int64
}

func (*ChargeWorker) Work(ctx context.Context, job *jobs.Job[ChargeArgs]) error {
	b := jobs.KeyState[balance](ctx) // this account's, kept while its actor lives
	if !b.loaded {
		b.cents, b.loaded = 10_000, true // e.g. load from your database
	}
	if b.cents < job.Args.Cents {
		return jobs.Permanent(fmt.Errorf("account %s: insufficient funds", job.Args.Account))
	}
	b.cents -= job.Args.Cents
	return nil
}

func ExampleAddWorker() {
	workers := jobs.NewWorkers()
	fmt.Println(jobs.AddWorker(workers, &ChargeWorker{}))
	fmt.Println(jobs.AddWorker(workers, &ChargeWorker{}))
	// Output:
	// <nil>
	// jobs: AddWorker: kind "charge" already has worker *jobs_test.ChargeWorker; refusing *jobs_test.ChargeWorker
}
