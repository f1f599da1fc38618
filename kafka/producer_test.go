package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// TestPartitionKeyChoosesThePartitionAndIsNotWritten checks both ways of
// choosing a partition end to end, against where the Java client puts the
// same keys on a 12-partition topic (the vectors of partitioner_test.go): a
// key is written and chooses the partition; a partition key only chooses it.
func TestPartitionKeyChoosesThePartitionAndIsNotWritten(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 12)
	javaPartition := map[string]int{"21": 0, "foobar": 6, "a-little-bit-long-string": 8, "abc": 3, "user-42": 4, "": 9}
	p := newProducer(t, env.Brokers)
	var msgs []kafka.Message
	for key := range javaPartition {
		msgs = append(msgs,
			kafka.Message{Topic: topic, PartitionKey: []byte(key), Value: []byte("partition-key:" + key)},
			kafka.Message{Topic: topic, Key: []byte(key), Value: []byte("key:" + key)})
	}
	if err := p.Produce(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}

	recs := env.ReadAll(t, topic)
	if len(recs) != len(msgs) {
		t.Fatalf("read %d records, produced %d", len(recs), len(msgs))
	}
	for _, r := range recs {
		kind, key, _ := strings.Cut(string(r.Value), ":")
		if want := javaPartition[key]; r.Partition != want {
			t.Errorf("%s %q landed on partition %d; the Java client picks %d", kind, key, r.Partition, want)
		}
		switch kind {
		case "partition-key":
			if r.Key != nil {
				t.Errorf("partition key %q: the record carries key %q, want none", key, r.Key)
			}
			if len(r.Headers) != 0 {
				t.Errorf("partition key %q: the record carries headers %v, want none", key, r.Headers)
			}
		case "key":
			if !bytes.Equal(r.Key, []byte(key)) {
				t.Errorf("key %q: the record carries key %q", key, r.Key)
			}
		}
	}
}

func TestProduceSyncSaysWhereEachMessageWent(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 4)
	p := newProducer(t, env.Brokers)
	msgs := make([]kafka.Message, 200)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i%7)), Value: []byte(strconv.Itoa(i)),
			Headers: []kafka.Header{{Key: "h", Value: []byte("v" + strconv.Itoa(i))}}}
	}
	deliveries, err := p.ProduceSync(context.Background(), msgs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(deliveries) != len(msgs) {
		t.Fatalf("%d deliveries for %d messages", len(deliveries), len(msgs))
	}
	byValue := map[string]kafka.Record{}
	for _, r := range env.ReadAll(t, topic) {
		byValue[string(r.Value)] = r
	}
	for i, d := range deliveries {
		r, ok := byValue[strconv.Itoa(i)]
		if !ok {
			t.Fatalf("message %d was not written", i)
		}
		if d.Topic != topic || d.Partition != r.Partition || d.Offset != r.Offset {
			t.Errorf("message %d: delivery says %s/%d@%d, the record is at %s/%d@%d",
				i, d.Topic, d.Partition, d.Offset, r.Topic, r.Partition, r.Offset)
		}
		if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "v"+strconv.Itoa(i) {
			t.Errorf("message %d: headers %v", i, r.Headers)
		}
	}
}

// TestProduceAsyncReportsEveryMessageOnce checks the async contract: each
// done runs exactly once, with where its message went, and Close returns
// only after all of them ran.
func TestProduceAsyncReportsEveryMessageOnce(t *testing.T) {
	t.Parallel()
	const n = 2000
	env := kafkatest.New(t)
	topic := env.Topic(t, 3)
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := make([]int, n)
	deliveries := make([]kafka.Delivery, n)
	var errs []error
	for i := range n {
		p.ProduceAsync(context.Background(), kafka.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i%10)), Value: []byte(strconv.Itoa(i))},
			func(d kafka.Delivery, err error) {
				mu.Lock()
				defer mu.Unlock()
				calls[i]++
				deliveries[i] = d
				if err != nil {
					errs = append(errs, err)
				}
			})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d messages failed, e.g. %v", len(errs), errs[0])
	}
	for i, c := range calls {
		if c != 1 {
			t.Fatalf("done of message %d ran %d times by the time Close returned, want exactly once", i, c)
		}
	}
	recs := env.ReadAll(t, topic)
	if len(recs) != n {
		t.Fatalf("read %d records, produced %d", len(recs), n)
	}
	for _, r := range recs {
		i, _ := strconv.Atoi(string(r.Value))
		if d := deliveries[i]; d.Partition != r.Partition || d.Offset != r.Offset {
			t.Errorf("message %d: done was told %d@%d, the record is at %d@%d", i, d.Partition, d.Offset, r.Partition, r.Offset)
		}
	}
}

// TestProduceFailuresAreReported covers each way a message can fail, sync
// and async: none is dropped, each names its cause, and a failure in one
// partition does not fail the messages of another.
func TestProduceFailuresAreReported(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	// The broker rejects a record batch bigger than the topic's
	// max.message.bytes after the producer has queued it, so that failure
	// comes back from the broker, through kafka-go's Completion.
	tight := kafkatest.UniqueName(t, "topic")
	createTopic(t, env, kafka.Topic{Name: tight, Partitions: 2, Configs: map[string]string{"max.message.bytes": "1024"}})
	var onPartition [2][]byte
	for i := 0; onPartition[0] == nil || onPartition[1] == nil; i++ {
		k := []byte("k" + strconv.Itoa(i))
		onPartition[kafka.Murmur2Partition(k, 2)] = k
	}
	big := bytes.Repeat([]byte("x"), 4096)
	ctx := context.Background()

	t.Run("sync: only the rejected message fails", func(t *testing.T) {
		p := newProducer(t, env.Brokers)
		deliveries, err := p.ProduceSync(ctx,
			kafka.Message{Topic: tight, PartitionKey: onPartition[0], Value: []byte("fits")},
			kafka.Message{Topic: tight, PartitionKey: onPartition[1], Value: big})
		var perr *kafka.ProduceError
		if !errors.As(err, &perr) {
			t.Fatalf("ProduceSync returned %v, want a *kafka.ProduceError", err)
		}
		if perr.Errs[0] != nil || perr.Errs[1] == nil {
			t.Fatalf("per-message errors %v; want only the oversized message (index 1) to fail", perr.Errs)
		}
		if d := deliveries[0]; d.Partition != 0 || d.Offset != 0 {
			t.Errorf("the message that fits: delivery %+v, want partition 0 offset 0", d)
		}
		if d := deliveries[1]; d.Partition != -1 || d.Offset != -1 {
			t.Errorf("the rejected message: delivery %+v, want partition and offset -1", d)
		}
		t.Logf("sync: %v", err)
	})

	t.Run("async: the broker rejects the message", func(t *testing.T) {
		p := newProducer(t, env.Brokers)
		err := produceAsyncAndWait(t, p, kafka.Message{Topic: tight, PartitionKey: onPartition[1], Value: big})
		if err == nil {
			t.Fatal("done got nil for a message bigger than the topic's max.message.bytes")
		}
		t.Logf("async: %v", err)
	})

	t.Run("async: the broker is unreachable", func(t *testing.T) {
		// Port 1 on loopback refuses connections at once: the metadata
		// lookup fails before anything is queued.
		p := newProducer(t, []string{"127.0.0.1:1"})
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		p.ProduceAsync(ctx, kafka.Message{Topic: tight, Value: []byte("v")}, func(_ kafka.Delivery, err error) { done <- err })
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("done got nil for a message to an unreachable broker")
			}
			t.Logf("unreachable: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("done was not called within 10 s for a message to an unreachable broker")
		}
	})

	t.Run("async and sync: the producer is closed", func(t *testing.T) {
		p := newProducer(t, env.Brokers)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		msg := kafka.Message{Topic: tight, Value: []byte("v")}
		if err := produceAsyncAndWait(t, p, msg); !errors.Is(err, kafka.ErrProducerClosed) {
			t.Errorf("ProduceAsync after Close: done got %v, want ErrProducerClosed", err)
		}
		if err := p.Produce(ctx, msg); !errors.Is(err, kafka.ErrProducerClosed) {
			t.Errorf("Produce after Close returned %v, want ErrProducerClosed", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestNewProducerNamesTheBadSetting(t *testing.T) {
	for _, c := range []struct {
		cfg  kafka.ProducerConfig
		want string
	}{
		{kafka.ProducerConfig{}, "ProducerConfig.Brokers"},
		{kafka.ProducerConfig{Brokers: []string{"b:9092"}, BatchSize: -1}, "ProducerConfig.BatchSize"},
		{kafka.ProducerConfig{Brokers: []string{"b:9092"}, WriteTimeout: -time.Second}, "ProducerConfig.WriteTimeout"},
	} {
		if _, err := kafka.NewProducer(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewProducer(%+v) returned %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

func newProducer(t *testing.T, brokers []string) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// produceAsyncAndWait produces msg with ProduceAsync and returns what done
// got, failing the test if done does not run within 30 s.
func produceAsyncAndWait(t *testing.T, p *kafka.Producer, msg kafka.Message) error {
	t.Helper()
	done := make(chan error, 2)
	p.ProduceAsync(context.Background(), msg, func(_ kafka.Delivery, err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("done was not called within 30 s")
		return nil
	}
}

func createTopic(t *testing.T, env *kafkatest.Env, topic kafka.Topic) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.Admin.CreateTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), topic.Name) })
	}
}
