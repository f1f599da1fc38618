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
		if !kafka.IsTooLarge(perr.Errs[1]) || !kafka.IsRefused(perr.Errs[1]) {
			t.Errorf("IsTooLarge and IsRefused of %v: %v, %v; want both true", perr.Errs[1], kafka.IsTooLarge(perr.Errs[1]), kafka.IsRefused(perr.Errs[1]))
		}
		// More than kafka-go's 1 MiB: refused before it is sent.
		_, err = p.ProduceSync(ctx, kafka.Message{Topic: tight, Value: bytes.Repeat([]byte("x"), 1<<20+1)})
		if !kafka.IsTooLarge(err) || !kafka.IsRefused(err) {
			t.Errorf("IsTooLarge and IsRefused of %v: %v, %v; want both true", err, kafka.IsTooLarge(err), kafka.IsRefused(err))
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
			if kafka.IsRefused(err) {
				t.Errorf("IsRefused(%v) is true; an unreachable broker may be reached when tried again", err)
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
		{kafka.ProducerConfig{Brokers: []string{"b:9092"}, UnknownTopicWait: -time.Second}, "ProducerConfig.UnknownTopicWait"},
		{kafka.ProducerConfig{Brokers: []string{"b:9092"}, MaxMessageBytes: -1}, "ProducerConfig.MaxMessageBytes"},
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

// TestLoneProduceSyncDoesNotWaitForTheBatchTimeout: a synchronous call made
// while nothing else is being written goes out at once, however long the
// batch timeout, so an enqueue from a request handler costs a round trip
// and not a timer.
func TestLoneProduceSyncDoesNotWaitForTheBatchTimeout(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 2)
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, BatchTimeout: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	// The first call also looks the topic up and dials its leader.
	if err := p.Produce(ctx, kafka.Message{Topic: topic, Key: []byte("warm-up"), Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	const calls = 5
	began := time.Now()
	for i := range calls {
		if err := p.Produce(ctx, kafka.Message{Topic: topic, Key: []byte("k" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(began); took >= 2*time.Second {
		t.Fatalf("%d sequential ProduceSync calls took %v with a 2 s BatchTimeout: a lone call waited for the batch timeout", calls, took)
	}
	if recs := env.ReadAll(t, topic); len(recs) != calls+1 {
		t.Fatalf("read %d records, produced %d", len(recs), calls+1)
	}
}

// TestConcurrentProduceSyncCallsGetTheirOwnOutcomes: calls made while others
// are being written go out together, and each caller still learns where
// its own messages went, or why they failed, without failing the calls
// written beside it. Calls to a topic that does not exist are mixed with
// calls to one that does.
func TestConcurrentProduceSyncCallsGetTheirOwnOutcomes(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 3)
	missing := kafkatest.UniqueName(t, "missing")
	p := newProducer(t, env.Brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const goroutines, perGoroutine = 32, 20
	type sent struct {
		value    string
		delivery kafka.Delivery
	}
	var (
		mu        sync.Mutex
		delivered []sent
		wg        sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				value := strconv.Itoa(g) + "-" + strconv.Itoa(i)
				if (g+i)%5 == 0 {
					// A call to a missing topic waits for it until its
					// own deadline, without holding up the others.
					short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					_, err := p.ProduceSync(short, kafka.Message{Topic: missing, Value: []byte(value)})
					cancel()
					if !errors.Is(err, kafka.ErrUnknownTopic) || !strings.Contains(err.Error(), strconv.Quote(missing)) {
						t.Errorf("a message to the missing topic %q: got %v, want ErrUnknownTopic naming the topic", missing, err)
					}
					continue
				}
				msgs := []kafka.Message{
					{Topic: topic, Key: []byte("g" + strconv.Itoa(g)), Value: []byte(value + "-a")},
					{Topic: topic, Key: []byte("g" + strconv.Itoa(g)), Value: []byte(value + "-b")},
				}
				ds, err := p.ProduceSync(ctx, msgs...)
				if err != nil {
					t.Errorf("call %s to %q: %v", value, topic, err)
					continue
				}
				mu.Lock()
				for j, d := range ds {
					delivered = append(delivered, sent{string(msgs[j].Value), d})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	recs := env.ReadAll(t, topic)
	if len(recs) != len(delivered) {
		t.Fatalf("read %d records, %d were reported written", len(recs), len(delivered))
	}
	at := map[string]kafka.Record{}
	for _, r := range recs {
		at[string(r.Value)] = r
	}
	for _, s := range delivered {
		r, ok := at[s.value]
		if !ok {
			t.Errorf("%s was reported written at %+v but is not in the topic", s.value, s.delivery)
			continue
		}
		if r.Partition != s.delivery.Partition || r.Offset != s.delivery.Offset {
			t.Errorf("%s was reported at partition %d offset %d; it is at partition %d offset %d",
				s.value, s.delivery.Partition, s.delivery.Offset, r.Partition, r.Offset)
		}
	}
	// Each call's two messages share a key, so a partition, and were
	// written in order.
	for _, s := range delivered {
		if strings.HasSuffix(s.value, "-b") {
			a := at[strings.TrimSuffix(s.value, "-b")+"-a"]
			if b := at[s.value]; b.Offset <= a.Offset {
				t.Errorf("%s is at offset %d, before its call's first message at %d", s.value, b.Offset, a.Offset)
			}
		}
	}
}

// TestProduceSyncKeepsOrderWhenCallersStopWaiting: a caller whose context
// ends while its message is in flight gets an error, but the message may
// still be written, and the calls after it must not overtake it. Calls with
// one key and contexts that end at random moments land in call order, and
// every call reported written is there.
func TestProduceSyncKeepsOrderWhenCallersStopWaiting(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	p := newProducer(t, env.Brokers)
	ctx := context.Background()
	if err := p.Produce(ctx, kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte("-1")}); err != nil {
		t.Fatal(err)
	}
	const calls = 300
	written := map[int]bool{}
	abandoned := map[int]bool{}
	for i := range calls {
		msgs := make([]kafka.Message, 1+i%100)
		for j := range msgs {
			msgs[j] = kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(strconv.Itoa(i))}
		}
		cctx, cancel := context.WithTimeout(ctx, time.Duration(i%7)*50*time.Microsecond)
		if i%2 == 0 {
			cctx, cancel = context.WithCancel(ctx)
		}
		if _, err := p.ProduceSync(cctx, msgs...); err == nil {
			written[i] = true
		} else if errors.Is(err, context.DeadlineExceeded) {
			abandoned[i] = true
		} else {
			t.Fatalf("call %d: %v", i, err)
		}
		cancel()
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	last := -1
	landed := map[int]bool{}
	for _, r := range env.ReadAll(t, topic) {
		i, _ := strconv.Atoi(string(r.Value))
		if i < last {
			t.Fatalf("call %d's message is at offset %d, after call %d's", i, r.Offset, last)
		}
		last = i
		delete(written, i)
		if abandoned[i] {
			landed[i] = true
		}
	}
	t.Logf("%d of %d calls stopped waiting; the messages of %d of them were written all the same", len(abandoned), calls, len(landed))
	if len(written) > 0 {
		t.Fatalf("%d calls were reported written but are not in the topic", len(written))
	}
}

// TestAMessageOverMaxMessageBytesFailsAlone: kafka-go would refuse the whole
// call for one message over its limit; the producer fails that message
// only, saying its size and the limit, and writes the others.
func TestAMessageOverMaxMessageBytesFailsAlone(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, MaxMessageBytes: 4096, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ds, err := p.ProduceSync(ctx,
		kafka.Message{Topic: topic, Value: []byte("a")},
		kafka.Message{Topic: topic, Value: bytes.Repeat([]byte("x"), 5000)},
		kafka.Message{Topic: topic, Value: []byte("b")})
	var perr *kafka.ProduceError
	if !errors.As(err, &perr) || perr.Errs[0] != nil || perr.Errs[2] != nil || !errors.Is(perr.Errs[1], kafka.ErrMessageTooLarge) ||
		!strings.Contains(perr.Errs[1].Error(), "5023 bytes, over the limit of 4096") {
		t.Fatalf("ProduceSync returned %v; want a *ProduceError failing message 1 alone with its size (5023 bytes) and the limit", err)
	}
	if ds[0].Offset != 0 || ds[1].Partition != -1 || ds[2].Offset != 1 {
		t.Errorf("deliveries %+v; want offsets 0 and 1 for the small messages, partition -1 for the large one", ds)
	}
	err = produceAsyncAndWait(t, p, kafka.Message{Topic: topic, Value: bytes.Repeat([]byte("x"), 5000)})
	if !errors.Is(err, kafka.ErrMessageTooLarge) || !strings.Contains(err.Error(), strconv.Quote(topic)) {
		t.Errorf("ProduceAsync of a message over the limit: done got %v, want ErrMessageTooLarge naming the topic", err)
	}
	if recs := env.ReadAll(t, topic); len(recs) != 2 {
		t.Errorf("the topic holds %d records, want the 2 small ones", len(recs))
	}
}

// TestCloseEndsAWaitForAnUnknownTopic: a call waiting for a topic that does
// not exist does not hold Close up for UnknownTopicWait.
func TestCloseEndsAWaitForAnUnknownTopic(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	p := newProducer(t, env.Brokers)
	missing := kafkatest.UniqueName(t, "missing")
	failed := make(chan error, 1)
	go func() { failed <- p.Produce(context.Background(), kafka.Message{Topic: missing, Value: []byte("v")}) }()
	// The call has begun waiting once a second one to the topic, under a
	// short deadline, has given up: the producer looks at most once per
	// backoff step, so the first is past its first look by then.
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Produce(short, kafka.Message{Topic: missing, Value: []byte("v")}); !errors.Is(err, kafka.ErrUnknownTopic) {
		t.Fatalf("Produce to a missing topic under a deadline returned %v, want ErrUnknownTopic", err)
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	err := <-failed
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a call waiting for a missing topic", took)
	}
	if !errors.Is(err, kafka.ErrUnknownTopic) || !strings.Contains(err.Error(), "the producer was closed") {
		t.Errorf("the waiting call returned %v; want ErrUnknownTopic saying the producer was closed", err)
	}
}
