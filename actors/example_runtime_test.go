package actors_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// The record-level API: a raw record handler run with ordo's guarantees
// (one record at a time per key, in offset order; commits only below
// finished records; a revocation drains the records in flight) over a
// consumer group, without package jobs. This is what jobs.Server does
// underneath, and all a service needs when its records are not jobs.
func ExampleRuntime() {
	broker, err := kafkaembed.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer broker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.NewAdmin(broker.Addrs()).CreateTopics(ctx, kafka.Topic{Name: "events", Partitions: 1}); err != nil {
		fmt.Println(err)
		return
	}
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: broker.Addrs()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer producer.Close()
	for _, v := range []string{"created", "paid", "shipped"} {
		if err := producer.Produce(ctx, kafka.Message{Topic: "events", Key: []byte("order-1"), Value: []byte(v)}); err != nil {
			fmt.Println(err)
			return
		}
	}

	seen := make(chan string, 3)
	rt, err := actors.NewRuntime(actors.Config{
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) actors.Outcome {
			seen <- string(r.Key) + " " + string(r.Value)
			return actors.Done()
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rt.Close()
	consumer, err := kafka.NewConsumer(kafka.ConsumerConfig{Brokers: broker.Addrs(), Group: "billing", Topics: []string{"events"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		// One call per generation: hand its partitions to the runtime,
		// and when it ends take them back (drained and committed) before
		// returning, which lets the consumer rejoin.
		ran <- consumer.Run(runCtx, func(sess *kafka.Session) {
			var parts []actors.TopicPartition
			for _, c := range sess.Claims() {
				defer c.Close()
				err := rt.Assign(actors.Assignment{Topic: c.Topic, Partition: c.Partition, Start: c.Start,
					StartMetadata: c.StartMetadata, Source: c, Generation: sess})
				if err != nil {
					fmt.Println(err)
					continue
				}
				parts = append(parts, actors.TopicPartition{Topic: c.Topic, Partition: c.Partition})
			}
			<-sess.Done()
			var err error
			if sess.Stopping() {
				err = rt.Shutdown()
			} else {
				err = rt.Revoke(parts...)
			}
			if err != nil && !errors.Is(err, actors.ErrShutdownTimeout) {
				fmt.Println(err)
			}
		})
	}()
	for range 3 {
		fmt.Println(<-seen)
	}
	stop()
	if err := <-ran; err != nil {
		fmt.Println(err)
	}
	// Output:
	// order-1 created
	// order-1 paid
	// order-1 shipped
}
