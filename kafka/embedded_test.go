package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// The embedded broker creates no topic on its own, as a production cluster
// should not: writing to a topic nobody created fails, and the topic is
// still missing afterwards. (A real broker does what its
// auto.create.topics.enable says.)
func TestEmbeddedBrokerCreatesNoTopicOnItsOwn(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	if !env.Embedded {
		t.Skip("the embedded broker only")
	}
	topic := kafkatest.UniqueName(t, "topic")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newProducer(t, env.Brokers)
	// The producer waits for a topic it does not know, up to the deadline.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	err := p.Produce(short, kafka.Message{Topic: topic, Value: []byte("v")})
	if !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		t.Fatalf("writing to a topic nobody created returned %v, want Unknown Topic Or Partition", err)
	}
	have, err := env.Admin.Partitions(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := have[topic]; ok {
		t.Fatalf("the embedded broker created %q with %d partitions", topic, n)
	}
}
