package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/commitmeta"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// execution is one run of a record's handler, as the handler saw it.
type execution struct {
	member     string
	generation int32
	partition  int
	offset     int64
	key        string
	seq        int
}

// ledger records what handlers actually ran, and checks order, overlap and
// duplicates from it.
type ledger struct {
	mu       sync.Mutex
	runs     []execution
	running  map[string]string // key → member running it
	overlaps []string
	distinct map[int]int // seq → runs
}

func newLedger() *ledger {
	return &ledger{running: map[string]string{}, distinct: map[int]int{}}
}

// handler returns a record handler for member that records each run and
// calls work in the middle of it.
func (l *ledger) handler(member string, work func(ctx context.Context, r *kafka.Record)) actors.Handler {
	return func(ctx context.Context, r *kafka.Record, _ int) actors.Outcome {
		seq, err := strconv.Atoi(string(r.Value))
		if err != nil {
			panic(fmt.Sprintf("value %q: %v", r.Value, err)) // the tests write only numbers
		}
		e := execution{member: member, generation: actors.GenerationID(ctx), partition: r.Partition,
			offset: r.Offset, key: string(r.Key), seq: seq}
		l.mu.Lock()
		if other, busy := l.running[e.key]; busy {
			l.overlaps = append(l.overlaps, fmt.Sprintf("key %s: %s started %d/%d while %s ran it", e.key, member, e.partition, e.offset, other))
		}
		l.running[e.key] = member
		l.runs = append(l.runs, e)
		l.mu.Unlock()
		if work != nil {
			work(ctx, r)
		}
		l.mu.Lock()
		delete(l.running, e.key)
		l.distinct[seq]++
		l.mu.Unlock()
		return actors.Done()
	}
}

func (l *ledger) finished() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.distinct)
}

// checkOrder asserts that per key, the offsets run strictly increase, except
// for re-runs after a revocation (when allowRerun is set, a key may go back
// to an offset it ran before, never to one it skipped).
func (l *ledger) checkOrder(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlaps) > 0 {
		t.Errorf("%d overlapping runs of one key, e.g. %v", len(l.overlaps), l.overlaps[0])
	}
	last := map[string]int64{}
	for _, e := range l.runs {
		if prev, ok := last[e.key]; ok && e.offset <= prev {
			t.Fatalf("key %s ran offset %d after %d", e.key, e.offset, prev)
		}
		last[e.key] = e.offset
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// produce writes n records keyed keyOf(i) whose values are their sequence
// numbers i.
func produce(t testing.TB, env *kafkatest.Env, topic string, n int, keyOf func(i int) string) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const chunk = 20_000
	for from := 0; from < n; from += chunk {
		msgs := make([]kafka.Message, 0, chunk)
		for i := from; i < min(n, from+chunk); i++ {
			msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(keyOf(i)), Value: []byte(strconv.Itoa(i))})
		}
		if err := p.Produce(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

func consumerConfig(t testing.TB, env *kafkatest.Env, topic, group string) kafka.ConsumerConfig {
	return kafka.ConsumerConfig{
		Brokers:           env.Brokers,
		Group:             group,
		Topics:            []string{topic},
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  20 * time.Second,
		Logger:            testLogger(t),
	}
}

func startServer(t *testing.T, consumer kafka.ConsumerConfig, rt actors.Config) *jobs.RecordServer {
	t.Helper()
	if rt.Logger == nil {
		rt.Logger = testLogger(t)
	}
	s, err := jobs.NewRecordServer(jobs.RecordServerConfig{Consumer: consumer, Runtime: rt})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = s.Stop(context.Background()) }) })
	return s
}

func stop(t *testing.T, s *jobs.RecordServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// waitForSignal waits up to a minute for ch to yield or close.
func waitForSignal[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out after 1m waiting for %s", what)
	}
}

// waitCommitMarksFinished waits until the group's commit of topic's
// partition 0 is at committed with offset among the finished records of
// its metadata, and fails at once if a commit it reads is past committed:
// the commit that proves offset finished also proves the watermark stayed
// at committed until then.
func waitCommitMarksFinished(t *testing.T, env *kafkatest.Env, group, topic string, committed, offset int64) {
	t.Helper()
	kafkatest.WaitFor(t, 30*time.Second, fmt.Sprintf("a commit at %d marking %d finished", committed, offset), func() bool {
		offs, err := env.Admin.CommittedOffsetsWithMetadata(context.Background(), group, topic)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := offs[0]
		if !ok {
			return false
		}
		if c.Offset > committed {
			t.Fatalf("committed offset %d passed offset %d, whose record never finished", c.Offset, committed)
		}
		if c.Offset < committed {
			return false
		}
		for _, r := range commitmeta.Decode(c.Offset, c.Metadata) {
			if r.First <= offset && offset <= r.Last {
				return true
			}
		}
		return false
	})
}

// waitCommittedToEnd waits until the group's committed offsets on the broker
// equal the topic's end offsets: everything handled was committed.
func waitCommittedToEnd(t *testing.T, env *kafkatest.Env, topic, group string) {
	t.Helper()
	ctx := context.Background()
	end, err := env.Admin.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var committed map[int]int64
	kafkatest.WaitFor(t, 30*time.Second, "committed offsets to reach the end", func() bool {
		committed, err = env.Admin.CommittedOffsets(ctx, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		for p, e := range end {
			if committed[p] != e {
				return false
			}
		}
		return true
	})
}

func TestOrderPerKeyUnderConcurrency(t *testing.T) {
	t.Parallel()
	const records, partitions, keys = 50_000, 8, 1000
	env := kafkatest.New(t)
	topic, group := env.Topic(t, partitions), env.Group(t)
	produce(t, env, topic, records, func(i int) string { return "key-" + strconv.Itoa(i%keys) })

	l := newLedger()
	s := startServer(t, consumerConfig(t, env, topic, group), actors.Config{
		Concurrency: 64,
		Handler: l.handler("A", func(ctx context.Context, r *kafka.Record) {
			time.Sleep(time.Duration(rand.IntN(2001)) * time.Microsecond) // 0–2 ms
		}),
	})
	kafkatest.WaitFor(t, 3*time.Minute, "all records to be handled", func() bool { return l.finished() == records })
	waitCommittedToEnd(t, env, topic, group)
	stop(t, s)

	l.checkOrder(t)
	for seq, n := range l.distinct {
		if n != 1 {
			t.Errorf("record %d handled %d times", seq, n)
		}
	}
	if len(l.runs) != records {
		t.Errorf("%d handler runs for %d records", len(l.runs), records)
	}
}

func TestCommittedOffsetNeverPassesARunningRecord(t *testing.T) {
	t.Parallel()
	const records, slow = 300, 100
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 1), env.Group(t)
	produce(t, env, topic, records, func(i int) string { return "key-" + strconv.Itoa(i) })

	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	l := newLedger()
	s := startServer(t, consumerConfig(t, env, topic, group), actors.Config{
		CommitInterval: 50 * time.Millisecond,
		Handler: l.handler("A", func(ctx context.Context, r *kafka.Record) {
			if r.Offset == slow {
				<-release
			}
		}),
	})
	kafkatest.WaitFor(t, time.Minute, "every other record to finish", func() bool { return l.finished() == records-1 })

	// A later record, finished after every other one: the commit that
	// marks it finished is made after the watermark had all it needed to
	// pass the slow record, had it been going to.
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Produce(context.Background(), kafka.Message{Topic: topic, Key: []byte("later"), Value: []byte(strconv.Itoa(records))}); err != nil {
		t.Fatal(err)
	}
	waitCommitMarksFinished(t, env, group, topic, slow, records)

	once.Do(func() { close(release) })
	waitCommittedToEnd(t, env, topic, group)
	stop(t, s)
}

func TestRevocationDrainsInFlightAndHandsOverAtTheWatermark(t *testing.T) {
	t.Parallel()
	const (
		partitions  = 4
		perKeyRecs  = 10
		keys        = 80
		records     = keys * perKeyRecs
		concurrency = 4
		buffer      = 50
	)
	env := kafkatest.New(t)
	topic, group := env.Topic(t, partitions), env.Group(t)
	produce(t, env, topic, records, func(i int) string { return "key-" + strconv.Itoa(i%keys) })

	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	l := newLedger()
	a := startServer(t, consumerConfig(t, env, topic, group), actors.Config{
		Concurrency: concurrency,
		MaxBuffered: buffer,
		Handler: l.handler("A", func(ctx context.Context, r *kafka.Record) {
			<-gate
		}),
	})
	var firstGen int32
	kafkatest.WaitFor(t, time.Minute, "A to hold all partitions with full slots and full buffers", func() bool {
		st := a.Runtime().Stats()
		inflight, full := 0, 0
		for _, p := range st {
			inflight += p.InFlight
			if p.Buffered == buffer {
				full++
			}
			firstGen = p.Generation
		}
		return len(st) == partitions && inflight == concurrency && full == partitions
	})
	l.mu.Lock()
	inFlight := slices.Clone(l.runs)
	l.mu.Unlock()

	b := startServer(t, consumerConfig(t, env, topic, group), actors.Config{Handler: l.handler("B", nil)})
	kafkatest.WaitFor(t, time.Minute, "A to begin revoking", func() bool {
		for _, p := range a.Runtime().Stats() {
			if p.Generation == firstGen && !p.Revoked {
				return false
			}
		}
		return true
	})
	open()
	kafkatest.WaitFor(t, 2*time.Minute, "every record to be handled", func() bool { return l.finished() == records })
	waitCommittedToEnd(t, env, topic, group)
	stop(t, a)
	stop(t, b)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlaps) > 0 {
		t.Errorf("a key ran on A and B at once: %v", l.overlaps[0])
	}
	var firstGenRuns []execution
	nextGenStart := map[int]int64{}
	for _, e := range l.runs {
		if e.member == "A" && e.generation == firstGen {
			firstGenRuns = append(firstGenRuns, e)
			continue
		}
		if o, ok := nextGenStart[e.partition]; !ok || e.offset < o {
			nextGenStart[e.partition] = e.offset
		}
	}
	if !slices.Equal(firstGenRuns, inFlight) {
		t.Fatalf("A ran %d records in its first generation, want only the %d in flight at revocation:\n%v\nvs\n%v",
			len(firstGenRuns), len(inFlight), firstGenRuns, inFlight)
	}
	// The watermark A committed is the first offset of each partition it
	// did not finish; the next owner starts exactly there.
	ranByA := map[[2]int64]bool{}
	for _, e := range inFlight {
		ranByA[[2]int64{int64(e.partition), e.offset}] = true
	}
	for p := range partitions {
		want := int64(0)
		for ranByA[[2]int64{int64(p), want}] {
			want++
		}
		if got := nextGenStart[p]; got != want {
			t.Errorf("partition %d: next generation started at %d, want A's watermark %d", p, got, want)
		}
	}
	dups := 0
	for _, n := range l.distinct {
		dups += n - 1
	}
	if dups > len(inFlight) {
		t.Errorf("%d records ran twice; at most the %d in flight at revocation may", dups, len(inFlight))
	}
	t.Logf("in flight at revocation: %d; duplicates: %d; next generation starts: %v", len(inFlight), dups, nextGenStart)
}

func TestBufferedRecordsPerPartitionStayBounded(t *testing.T) {
	t.Parallel()
	// 10,000 a partition: far more than the 3,000 handled, the buffers and
	// what one fetch response brings.
	const records, partitions, buffer = 40_000, 4, 100
	env := kafkatest.New(t)
	topic, group := env.Topic(t, partitions), env.Group(t)
	produce(t, env, topic, records, func(i int) string { return "key-" + strconv.Itoa(i%5000) })

	var handled atomic.Int64
	s := startServer(t, consumerConfig(t, env, topic, group), actors.Config{
		Concurrency: 8,
		MaxBuffered: buffer,
		Handler: func(ctx context.Context, r *kafka.Record, _ int) actors.Outcome {
			time.Sleep(time.Millisecond)
			handled.Add(1)
			return actors.Done()
		},
	})
	sampled := 0
	kafkatest.WaitFor(t, time.Minute, "3,000 records handled from the backlog", func() bool {
		for _, p := range s.Runtime().Stats() {
			sampled = max(sampled, p.Buffered)
		}
		return handled.Load() >= 3000
	})
	peak := 0
	for _, p := range s.Runtime().Stats() {
		peak = max(peak, p.PeakBuffered)
	}
	stop(t, s)
	if sampled > buffer || peak > buffer {
		t.Fatalf("buffered per partition reached %d (sampled), %d (peak gauge); the bound is %d", sampled, peak, buffer)
	}
	if peak < buffer {
		t.Fatalf("peak buffered %d never reached the bound %d with a %d-record backlog", peak, buffer, records)
	}
}

func TestShutdownTimeoutReturnsAndNamesWhatWasLeft(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 2), env.Group(t)
	produce(t, env, topic, 100, func(i int) string { return "key-" + strconv.Itoa(i) })

	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	var stuckAt atomic.Pointer[kafka.Record]
	l := newLedger()
	s := startServer(t, consumerConfig(t, env, topic, group), actors.Config{
		ShutdownTimeout: timeout,
		Handler: l.handler("A", func(ctx context.Context, r *kafka.Record) {
			if string(r.Value) == "50" {
				stuckAt.Store(r)
				<-stuck // ignores cancellation
			}
		}),
	})
	kafkatest.WaitFor(t, time.Minute, "99 records handled and one stuck", func() bool {
		return l.finished() == 99 && stuckAt.Load() != nil
	})
	began := time.Now()
	err := s.Stop(context.Background())
	took := time.Since(began)
	r := stuckAt.Load()
	if !errors.Is(err, actors.ErrShutdownTimeout) {
		t.Fatalf("Stop returned %v, want an error wrapping actors.ErrShutdownTimeout", err)
	}
	if want := fmt.Sprintf("%s/%d@%d", topic, r.Partition, r.Offset); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the record left, %s", err, want)
	}
	if took > timeout+3*time.Second {
		t.Errorf("Stop took %v with a %v shutdown timeout", took, timeout)
	}
	committed, cerr := env.Admin.CommittedOffsets(context.Background(), group, topic)
	if cerr != nil {
		t.Fatal(cerr)
	}
	if committed[r.Partition] > r.Offset {
		t.Errorf("partition %d committed %d, past the unfinished record at %d", r.Partition, committed[r.Partition], r.Offset)
	}
	t.Logf("Stop took %v: %v", took, err)
}
