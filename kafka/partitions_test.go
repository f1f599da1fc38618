package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// loggedRecord is a log record as a test reads it back.
type loggedRecord struct {
	Time    time.Time
	Message string
	Attrs   map[string]slog.Value
}

// logRecorder is a slog.Handler that keeps what is logged at Info and above
// and passes it to the test's log.
type logRecorder struct {
	t       testing.TB
	mu      sync.Mutex
	records []loggedRecord
}

func (l *logRecorder) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{Time: r.Time, Message: r.Message, Attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value
		return true
	})
	l.t.Logf("%s %s %v", r.Level, r.Message, rec.Attrs)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, rec)
	return nil
}

// matching returns the records so far for which match is true.
func (l *logRecorder) matching(match func(loggedRecord) bool) []loggedRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedRecord
	for _, r := range l.records {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// await waits up to d for a record for which match is true.
func (l *logRecorder) await(t *testing.T, d time.Duration, match func(loggedRecord) bool) {
	t.Helper()
	kafkatest.WaitFor(t, d, "the log record", func() bool { return len(l.matching(match)) > 0 })
}

// consumeInto runs a group member that reads every partition it is given
// and sends each record's value on the returned channel, until the test
// ends.
func consumeInto(ctx context.Context, t *testing.T, cfg kafka.ConsumerConfig) <-chan string {
	t.Helper()
	c, err := kafka.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	values := make(chan string, 1024)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, func(sess *kafka.Session) {
			var wg sync.WaitGroup
			for _, cl := range sess.Claims() {
				wg.Go(func() {
					for {
						recs, _, err := cl.Fetch(ctx, nil, 100)
						if errors.Is(err, kafka.ErrRevoked) || ctx.Err() != nil {
							return
						}
						for _, r := range recs {
							values <- string(r.Value)
						}
					}
				})
			}
			wg.Wait()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return values
}

// awaitValue waits for want among the values, for at most d.
func awaitValue(t *testing.T, values <-chan string, want string, d time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	deadline := time.After(d)
	for {
		select {
		case v := <-values:
			if v == want {
				return time.Since(began)
			}
		case <-deadline:
			t.Fatalf("%q was not consumed within %v", want, d)
		}
	}
}

// TestConsumerReadsPartitionsAddedToItsTopic: a member consuming a live
// topic notices partitions added to it (the metadata watch rebalances the
// group) and reads what is written to them, within a few watch intervals.
func TestConsumerReadsPartitionsAddedToItsTopic(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 1), env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	values := consumeInto(ctx, t, kafka.ConsumerConfig{
		Brokers: env.Brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		PartitionWatchInterval: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	p := newProducer(t, env.Brokers)
	if err := p.Produce(ctx, kafka.Message{Topic: topic, Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	awaitValue(t, values, "before", time.Minute)

	if err := env.Admin.AddPartitions(ctx, topic, 3); err != nil {
		t.Fatal(err)
	}
	// A producer of its own: the first one still has the old partition
	// count cached.
	p = newProducer(t, env.Brokers)
	var onNew []byte
	for i := 0; onNew == nil; i++ {
		if k := []byte{byte(i)}; kafka.Murmur2Partition(k, 3) == 2 {
			onNew = k
		}
	}
	ds, err := p.ProduceSync(ctx, kafka.Message{Topic: topic, PartitionKey: onNew, Value: []byte("after")})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Partition != 2 {
		t.Fatalf("the record went to partition %d, want the new partition 2", ds[0].Partition)
	}
	took := awaitValue(t, values, "after", 30*time.Second)
	t.Logf("a record on an added partition was consumed %v after it was written (watch interval 300ms)", took)
}

// TestConsumerReadsATopicCreatedAfterItStarted: a member started before its
// topic exists does not stall: once the topic is created (by hand, or by
// the broker when it auto-creates topics), what is written to it is read.
func TestConsumerReadsATopicCreatedAfterItStarted(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := kafkatest.UniqueName(t, "topic"), env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &logRecorder{t: t}
	values := consumeInto(ctx, t, kafka.ConsumerConfig{
		Brokers: env.Brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		PartitionWatchInterval: 300 * time.Millisecond, Logger: slog.New(logs),
	})
	// The member has joined a group whose topic is missing, or failed
	// to (the broker said how).
	logs.await(t, 30*time.Second, func(r loggedRecord) bool {
		return r.Message == "ordo: partitions assigned" || r.Message == "ordo: joining consumer group failed; retrying"
	})
	err := env.Admin.CreateTopics(ctx, kafka.Topic{Name: topic, Partitions: 2})
	if err != nil && !errors.Is(err, kafka.ErrTopicExists) {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), topic) })
	}
	p := newProducer(t, env.Brokers)
	if err := p.Produce(ctx, kafka.Message{Topic: topic, Value: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	took := awaitValue(t, values, "first", 30*time.Second)
	t.Logf("the first record of a topic created after the member started was consumed %v after it was written", took)
}

// TestMemberOfAMissingTopicDoesNotRejoinInALoop: while a topic of the group
// does not exist, kafka-go's partition watcher ends every generation as soon
// as it starts; the member waits between them, with a growing pause it logs,
// instead of rejoining hundreds of times a second. (A broker that creates
// topics on a member's metadata request ends the wait sooner.)
func TestMemberOfAMissingTopicDoesNotRejoinInALoop(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	logs := &logRecorder{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers: env.Brokers, Group: env.Group(t), Topics: []string{kafkatest.UniqueName(t, "missing")},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, Logger: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx, func(s *kafka.Session) { <-s.Done() }); err != nil {
		t.Fatal(err)
	}
	gens := logs.matching(func(r loggedRecord) bool { return r.Message == "ordo: partitions assigned" })
	if len(gens) > 10 {
		t.Fatalf("the member went through %d generations in 3 s while its topic was missing", len(gens))
	}
	waits := logs.matching(func(r loggedRecord) bool {
		return r.Message == "ordo: topics of the group do not exist; waiting for them"
	})
	if env.Embedded && len(waits) == 0 {
		t.Fatal("the member did not log that its topic is missing")
	}
	t.Logf("%d generations in 3 s; %d logged waits for the missing topic", len(gens), len(waits))
}

// TestJoinRetryLogSaysTheRealWait: while the group cannot be joined (here,
// no broker listens), each failed attempt is logged when it fails, and the
// next attempt comes retry_in later, as the log says: the gap between two
// logged failures is the first one's retry_in.
func TestJoinRetryLogSaysTheRealWait(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	logs := &logRecorder{t: t}
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers: []string{addr}, Group: "group", Topics: []string{"topic"}, Logger: slog.New(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, func(*kafka.Session) { t.Error("joined a group with no broker") }) }()
	retries := func() []loggedRecord {
		return logs.matching(func(r loggedRecord) bool { return r.Message == "ordo: joining consumer group failed; retrying" })
	}
	const want = 5
	kafkatest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d join failures to be logged", want), func() bool { return len(retries()) >= want })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after its context ended", err)
	}
	rs := retries()
	for i := 1; i < want; i++ {
		said := rs[i-1].Attrs["retry_in"].Duration()
		gap := rs[i].Time.Sub(rs[i-1].Time)
		t.Logf("retry_in=%v, next failure logged %v later", said, gap)
		// A refused connection fails at once; the slack is for a busy
		// machine.
		if gap < said || gap > said+300*time.Millisecond {
			t.Errorf("failure %d said retry_in=%v; the next was logged %v later", i, said, gap)
		}
	}
}
