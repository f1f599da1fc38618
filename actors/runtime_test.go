package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/commitmeta"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// execLog records what handlers actually did, per key, to check order and
// overlap afterwards.
type execLog struct {
	mu      sync.Mutex
	byKey   map[string][]int64 // offsets in start order
	running map[string]bool
	overlap []string
	count   map[[2]int64]int // (partition, offset) → runs
}

func newExecLog() *execLog {
	return &execLog{byKey: map[string][]int64{}, running: map[string]bool{}, count: map[[2]int64]int{}}
}

func (l *execLog) start(r *kafka.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := fmt.Sprintf("%d/%s", r.Partition, r.Key)
	if l.running[k] {
		l.overlap = append(l.overlap, fmt.Sprintf("%s@%d", k, r.Offset))
	}
	l.running[k] = true
	l.byKey[k] = append(l.byKey[k], r.Offset)
	l.count[[2]int64{int64(r.Partition), r.Offset}]++
}

func (l *execLog) end(r *kafka.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[fmt.Sprintf("%d/%s", r.Partition, r.Key)] = false
}

func (l *execLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.count)
}

// check asserts each record ran exactly once, in offset order per key, with
// no two records of a key overlapping.
func (l *execLog) check(t *testing.T, want int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlap) > 0 {
		t.Errorf("records of one key overlapped: %v", l.overlap[:min(5, len(l.overlap))])
	}
	if len(l.count) != want {
		t.Errorf("%d distinct records ran, want %d", len(l.count), want)
	}
	for rec, n := range l.count {
		if n != 1 {
			t.Errorf("record %v ran %d times", rec, n)
		}
	}
	for k, offs := range l.byKey {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Fatalf("key %s ran offset %d after %d", k, offs[i], offs[i-1])
			}
		}
	}
}

func randomKeys(n, keys int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d", r.IntN(keys))
	}
	return out
}

// handler adapts a plain function to a Handler whose records always finish.
func handler(fn func(ctx context.Context, r *kafka.Record)) Handler {
	return func(ctx context.Context, r *kafka.Record, _ int) Outcome {
		fn(ctx, r)
		return Done()
	}
}

func TestRuntimeRunsEachRecordOnceInOrderPerKey(t *testing.T) {
	t.Parallel()
	const partitions, perPartition = 4, 5000
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: 16,
		MaxBuffered: 300,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			log.start(r)
			if r.Offset%7 == 0 {
				time.Sleep(time.Duration(r.Offset%3) * 100 * time.Microsecond)
			}
			log.end(r)
		}),
	})
	gen := newMemGeneration()
	var sources []RecordSource
	for p := range partitions {
		sources = append(sources, newMemSource("t", p, randomKeys(perPartition, 50, uint64(p))))
	}
	assign(t, rt, gen, sources...)
	kafkatest.WaitFor(t, 30*time.Second, "all records to run", func() bool { return log.total() == partitions*perPartition })
	kafkatest.WaitFor(t, 10*time.Second, "commits to reach the end", func() bool {
		for p := range partitions {
			if gen.committed(p) != perPartition {
				return false
			}
		}
		return true
	})
	if err := rt.Shutdown(); err != nil {
		t.Fatal(err)
	}
	log.check(t, partitions*perPartition)
}

func newTestRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	rt, err := NewRuntime(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

// assign hands the sources to the runtime as partitions 0, 1, ... of topic t.
func assign(t *testing.T, rt *Runtime, gen Generation, sources ...RecordSource) {
	t.Helper()
	for p, src := range sources {
		if err := rt.Assign(Assignment{Topic: "t", Partition: p, Start: 0, Source: src, Generation: gen}); err != nil {
			t.Fatal(err)
		}
	}
}

// revokeAsync revokes partitions in the background.
func revokeAsync(rt *Runtime, parts ...int) <-chan error {
	tps := make([]TopicPartition, len(parts))
	for i, p := range parts {
		tps[i] = TopicPartition{"t", p}
	}
	errc := make(chan error, 1)
	go func() { errc <- rt.Revoke(tps...) }()
	return errc
}

func statsOf(rt *Runtime, partition int) PartitionStats {
	for _, s := range rt.Stats() {
		if s.Partition == partition {
			return s
		}
	}
	return PartitionStats{}
}

func keysN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestIdleKeyActorsArePassivatedAndComeBack(t *testing.T) {
	t.Parallel()
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		IdleTimeout: 50 * time.Millisecond,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			log.start(r)
			log.end(r)
		}),
	})
	src := newMemSource("t", 0, keysN("k", 100))
	gen := newMemGeneration()
	assign(t, rt, gen, src)
	kafkatest.WaitFor(t, 10*time.Second, "100 records to run", func() bool { return log.total() == 100 })
	kafkatest.WaitFor(t, 10*time.Second, "idle key actors to be passivated", func() bool { return statsOf(rt, 0).Keys == 0 })

	src.add("t", 0, keysN("k", 100)...) // the same keys again: new actors
	kafkatest.WaitFor(t, 10*time.Second, "200 records to run", func() bool { return log.total() == 200 })
	kafkatest.WaitFor(t, 10*time.Second, "commit of all 200", func() bool { return gen.committed(0) == 200 })
	if err := <-revokeAsync(rt, 0); err != nil {
		t.Fatal(err)
	}
	log.check(t, 200)
}

// TestIdleKeyCapHoldsUnderKeyChurn: every record has a key never seen
// before. Live key actors never exceed the idle cap plus the keys that have
// work (at most MaxBuffered), and once the work is done only the cap is left.
func TestIdleKeyCapHoldsUnderKeyChurn(t *testing.T) {
	t.Parallel()
	const idleCap, buffer, n = 50, 100, 20_000
	log := newExecLog()
	var most atomic.Int64 // sampled as each record runs
	var rt *Runtime
	rt = newTestRuntime(t, Config{
		Concurrency: 8,
		MaxBuffered: buffer,
		MaxIdleKeys: idleCap,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			log.start(r)
			storeMax(&most, int64(statsOf(rt, 0).Keys))
			log.end(r)
		}),
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keysN("k", n)))
	kafkatest.WaitFor(t, 60*time.Second, "every record to run", func() bool {
		storeMax(&most, int64(statsOf(rt, 0).Keys))
		return log.total() == n
	})
	kafkatest.WaitFor(t, 10*time.Second, "the commit", func() bool { return gen.committed(0) == n })
	if most := most.Load(); most > idleCap+buffer {
		t.Errorf("%d live key actors seen; the cap allows %d idle + %d with work", most, idleCap, buffer)
	}
	if keys := statsOf(rt, 0).Keys; keys > idleCap {
		t.Errorf("%d key actors alive with no work left; MaxIdleKeys is %d", keys, idleCap)
	}
	log.check(t, n)
}

func TestMaxVirtualPartitionsCapsKeyActorsAndConcurrency(t *testing.T) {
	t.Parallel()
	const slots = 3
	var running, maxRunning, maxKeys atomic.Int64
	log := newExecLog()
	var rt *Runtime
	rt = newTestRuntime(t, Config{
		Concurrency:          50,
		MaxVirtualPartitions: slots,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			storeMax(&maxRunning, running.Add(1))
			storeMax(&maxKeys, int64(statsOf(rt, 0).Keys))
			log.start(r)
			time.Sleep(200 * time.Microsecond)
			log.end(r)
			running.Add(-1)
		}),
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, randomKeys(2000, 1000, 3)))
	kafkatest.WaitFor(t, 30*time.Second, "2000 records to run", func() bool {
		storeMax(&maxKeys, int64(statsOf(rt, 0).Keys))
		return log.total() == 2000
	})
	if err := <-revokeAsync(rt, 0); err != nil {
		t.Fatal(err)
	}
	if maxKeys.Load() > slots || maxRunning.Load() > slots {
		t.Errorf("1000 keys capped at %d virtual partitions: saw %d key actors and %d records at once",
			slots, maxKeys.Load(), maxRunning.Load())
	}
	if maxRunning.Load() < 2 {
		t.Errorf("at most %d records ran at once; virtual partitions should run concurrently", maxRunning.Load())
	}
}

// storeMax raises m to v if v is higher.
func storeMax(m *atomic.Int64, v int64) {
	for cur := m.Load(); v > cur && !m.CompareAndSwap(cur, v); cur = m.Load() {
	}
}

// gate blocks handlers until opened.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}
func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// heldAt returns a handler that logs every record and keeps the one at
// offset running until g opens.
func heldAt(offset int64, g *gate, log *execLog) Handler {
	return handler(func(ctx context.Context, r *kafka.Record) {
		log.start(r)
		if r.Offset == offset {
			<-g.ch
		}
		log.end(r)
	})
}

func TestRevocationFinishesOnlyInFlightRecords(t *testing.T) {
	t.Parallel()
	const concurrency, buffer = 2, 20
	g := newGate(t)
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: concurrency,
		MaxBuffered: buffer,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			log.start(r)
			<-g.ch
			log.end(r)
		}),
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, randomKeys(50, 10, 9)))
	kafkatest.WaitFor(t, 10*time.Second, "slots full and buffer full", func() bool {
		s := statsOf(rt, 0)
		return s.InFlight == concurrency && s.Buffered == buffer
	})
	errc := revokeAsync(rt, 0) // a rebalance
	kafkatest.WaitFor(t, 10*time.Second, "revocation to begin", func() bool { return statsOf(rt, 0).Revoked })
	g.open()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := log.total(); n != concurrency {
		t.Fatalf("%d records ran; want only the %d in flight at revocation", n, concurrency)
	}
	firstUnfinished := int64(0)
	for log.count[[2]int64{0, firstUnfinished}] == 1 {
		firstUnfinished++
	}
	got := gen.committed(0)
	if got == -1 {
		got = 0 // nothing committed: the group stays at the start offset
	}
	if got != firstUnfinished {
		t.Errorf("committed %d after revocation, want %d (first record not run)", got, firstUnfinished)
	}
}

// lateSource hands out one batch, then (like a client with a prefetch queue,
// kafka-go #1398) returns another batch only after the revocation began.
type lateSource struct {
	calls   atomic.Int32
	lateOff int64
	revoked chan struct{} // closed once the revocation began
}

func (s *lateSource) Fetch(ctx context.Context, dst []kafka.Record, max int) ([]kafka.Record, int64, error) {
	if s.calls.Add(1) == 1 {
		return append(dst, kafka.Record{Topic: "t", Offset: 0, Key: []byte("a")}, kafka.Record{Topic: "t", Offset: 1, Key: []byte("b")}), 2, nil
	}
	<-s.revoked
	return append(dst, kafka.Record{Topic: "t", Offset: s.lateOff, Key: []byte("a")}), s.lateOff + 1, nil
}

func TestRecordsFetchedBeforeRevocationAreNeverRunAfterIt(t *testing.T) {
	t.Parallel()
	log := newExecLog()
	rt := newTestRuntime(t, Config{Handler: handler(func(ctx context.Context, r *kafka.Record) {
		log.start(r)
		log.end(r)
	})})
	gen := newMemGeneration()
	src := &lateSource{lateOff: 2, revoked: make(chan struct{})}
	assign(t, rt, gen, src)
	kafkatest.WaitFor(t, 10*time.Second, "first batch to run", func() bool { return log.total() == 2 })
	errc := revokeAsync(rt, 0)
	kafkatest.WaitFor(t, 10*time.Second, "revocation to begin", func() bool { return statsOf(rt, 0).Revoked })
	close(src.revoked)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if log.count[[2]int64{0, 2}] != 0 {
		t.Fatal("a record delivered after revocation was run")
	}
	if got := gen.committed(0); got != 2 {
		t.Errorf("committed %d, want 2: the late record must not be committed", got)
	}
}

func TestBufferedRecordsNeverExceedMaxBuffered(t *testing.T) {
	t.Parallel()
	const buffer = 50
	log := newExecLog()
	var seen atomic.Int64 // sampled as each record runs
	var rt *Runtime
	rt = newTestRuntime(t, Config{
		Concurrency: 4,
		MaxBuffered: buffer,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			log.start(r)
			for _, s := range rt.Stats() {
				storeMax(&seen, int64(s.Buffered))
			}
			time.Sleep(100 * time.Microsecond)
			log.end(r)
		}),
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, randomKeys(3000, 200, 5)), newMemSource("t", 1, randomKeys(3000, 200, 6)))
	kafkatest.WaitFor(t, 60*time.Second, "6000 records to run", func() bool {
		for _, s := range rt.Stats() {
			storeMax(&seen, int64(s.Buffered))
		}
		return log.total() == 6000
	})
	peak := 0
	for _, s := range rt.Stats() {
		peak = max(peak, s.PeakBuffered)
	}
	if err := rt.Shutdown(); err != nil {
		t.Fatal(err)
	}
	log.check(t, 6000)
	if seen := int(seen.Load()); seen > buffer || peak > buffer {
		t.Fatalf("buffered records reached %d (sampled) / %d (peak gauge); bound is %d", seen, peak, buffer)
	}
	if peak < buffer {
		t.Errorf("peak buffered %d never reached the bound %d: the test did not exercise backpressure", peak, buffer)
	}
}

// TestASlowHeadRecordDoesNotStopItsPartition: the first record of a
// partition runs long; with MaxBuffered at its default, the partition's
// other keys go on far past MaxBuffered records, and the commit waits at the
// slow record. Then the span cap stops reading, and the slow record's end
// releases everything.
func TestASlowHeadRecordDoesNotStopItsPartition(t *testing.T) {
	t.Parallel()
	const n, span = 6000, 4000
	g := newGate(t)
	log := newExecLog()
	rt := newTestRuntime(t, Config{MaxSpan: span, Handler: heldAt(0, g, log)})
	gen := newMemGeneration()
	keys := append([]string{"slow"}, keysN("k", n-1)...)
	src := newMemSource("t", 0, keys)
	// While the slow record holds the committable offset at 0, no fetch
	// may reach past the span cap: the source checks every one.
	src.limit(span)
	assign(t, rt, gen, src)
	// Fetching resumes when a quarter of the span is free, so it may stop
	// up to that short of the cap.
	kafkatest.WaitFor(t, 30*time.Second, "records far past MaxBuffered to run around the slow one", func() bool {
		return log.total() >= span-span/4
	})
	// Reading stops for good once the fetcher is paused, only the slow
	// record is held, and the span left is below the quarter at which
	// fetching resumes: room can grow only when the slow record ends.
	// From then on the source sees no fetch unless the cap is broken.
	fetcher := func() *partition {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		return rt.parts[partitionID{"t", 0}]
	}()
	const resumeAt = min(DefaultMaxBuffered, span) / 4
	kafkatest.WaitFor(t, 30*time.Second, "reading to stop at the span cap with every record fetched run", func() bool {
		fetched := src.handedOut()
		return fetcher.paused.Load() && statsOf(rt, 0).Buffered == 1 && int64(log.total()) == fetched && fetched > span-resumeAt
	})
	st := statsOf(rt, 0)
	if st.Buffered > 1000 || st.Span > span {
		t.Errorf("buffered %d, span %d: bounds are 1000 and %d", st.Buffered, st.Span, span)
	}
	if got := gen.committed(0); got > 0 {
		t.Errorf("committed %d past the slow record at 0", got)
	}
	if got := log.total(); got > span {
		t.Errorf("%d records ran while the span cap is %d", got, span)
	}
	if end := src.uncap(); end > 0 {
		t.Errorf("fetched up to offset %d while the slow record held the commit at 0; the span cap is %d", end, span)
	}
	g.open()
	kafkatest.WaitFor(t, 30*time.Second, "everything to run and be committed", func() bool { return gen.committed(0) == n })
	log.check(t, n)
}

// TestAKeyInBackOffHoldsNoSlot: with one slot, a record that asks for a
// minute's back-off does not keep another key's records from running.
func TestAKeyInBackOffHoldsNoSlot(t *testing.T) {
	t.Parallel()
	var waiting atomic.Bool
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: 1,
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) Outcome {
			log.start(r)
			defer log.end(r)
			if string(r.Key) == "slow" {
				waiting.Store(true)
				return Retry(time.Minute)
			}
			return Done()
		},
	})
	gen := newMemGeneration()
	keys := append([]string{"slow", "slow"}, keysN("k", 200)...)
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 10*time.Second, "the other keys to finish during the back-off", func() bool { return log.total() == 201 })
	if !waiting.Load() || log.count[[2]int64{0, 1}] != 0 {
		t.Fatal("the key in back-off ran its next record")
	}
	if got := gen.committed(0); got > 0 {
		t.Errorf("committed %d past the record in back-off", got)
	}
}

// TestRevocationReachesAKeyInBackOffAtOnce: the drain waits for records
// running, not for a back-off timer; the record in back-off is not committed.
func TestRevocationReachesAKeyInBackOffAtOnce(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	rt := newTestRuntime(t, Config{
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) Outcome {
			if r.Offset == 2 {
				attempts.Add(1)
				return Retry(time.Minute)
			}
			return Done()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, []string{"a", "b", "c", "d"}))
	kafkatest.WaitFor(t, 10*time.Second, "the failing record to back off", func() bool { return attempts.Load() == 1 })
	kafkatest.WaitFor(t, 10*time.Second, "the others to be committed up to it", func() bool { return gen.committed(0) == 2 })
	began := time.Now()
	if err := <-revokeAsync(rt, 0); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("revocation took %v with a key in a minute's back-off", took)
	}
	if got := gen.committed(0); got != 2 {
		t.Errorf("committed %d after revocation, want 2 (the record in back-off)", got)
	}
}

// TestRevokingOnePartitionLeavesTheOthersRunning: while partition 0 drains
// (its record in flight is held up), partition 1 keeps finishing records;
// then partition 0 alone is committed and released.
func TestRevokingOnePartitionLeavesTheOthersRunning(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	var during atomic.Bool
	var ranDuring atomic.Int64
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: 4,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			log.start(r)
			if r.Partition == 0 && r.Offset == 5 {
				<-g.ch
			}
			if r.Partition == 1 {
				time.Sleep(200 * time.Microsecond)
				if during.Load() {
					ranDuring.Add(1)
				}
			}
			log.end(r)
		}),
	})
	gen := newMemGeneration()
	p1 := newMemSource("t", 1, randomKeys(100, 20, 2))
	assign(t, rt, gen, newMemSource("t", 0, keysN("k", 10)), p1)
	kafkatest.WaitFor(t, 10*time.Second, "partition 0's records to run, its slow one still running", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		ran := 0
		for o := range int64(10) {
			ran += log.count[[2]int64{0, o}]
		}
		return ran == 10 && statsOf(rt, 0).InFlight == 1
	})
	during.Store(true)
	errc := revokeAsync(rt, 0)
	kafkatest.WaitFor(t, 10*time.Second, "revocation of partition 0", func() bool { return statsOf(rt, 0).Revoked })
	p1.add("t", 1, randomKeys(2000, 20, 3)...)
	kafkatest.WaitFor(t, 30*time.Second, "partition 1 to run records during the drain", func() bool { return ranDuring.Load() >= 500 })
	select {
	case err := <-errc:
		t.Fatalf("revocation returned (%v) while a record was in flight", err)
	default:
	}
	g.open()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	during.Store(false)
	if got := gen.committed(0); got != 10 {
		t.Errorf("partition 0 committed %d, want 10", got)
	}
	if st := rt.Stats(); len(st) != 1 || st[0].Partition != 1 || st[0].Revoked {
		t.Fatalf("after revoking 0 the runtime holds %+v, want partition 1 only, running", st)
	}
	kafkatest.WaitFor(t, 30*time.Second, "partition 1 to finish", func() bool { return gen.committed(1) == 2100 })
}

// TestAKeyWithALongQueueTakesTurns: with one worker, a key with fifty
// records queued does not keep it until its queue is empty; a key whose one
// record arrived behind them runs long before the last of them.
func TestAKeyWithALongQueueTakesTurns(t *testing.T) {
	t.Parallel()
	var order []string
	var mu sync.Mutex
	var rt *Runtime
	rt = newTestRuntime(t, Config{
		Concurrency: 1,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			if r.Offset == 0 {
				// Hold the only worker until the supervisor has routed
				// the other key's record: on a loaded machine it may
				// otherwise route it only after the busy key ran dry,
				// and the test would not test taking turns.
				kafkatest.WaitFor(t, 10*time.Second, "the other key to be routed", func() bool {
					st := rt.Stats()
					return len(st) == 1 && st[0].Keys == 2
				})
			}
			mu.Lock()
			order = append(order, string(r.Key))
			mu.Unlock()
		}),
	})
	gen := newMemGeneration()
	keys := append(slices.Repeat([]string{"busy"}, 50), "other")
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 10*time.Second, "every record to run", func() bool { return gen.committed(0) == 51 })
	mu.Lock()
	defer mu.Unlock()
	if at := slices.Index(order, "other"); at < 0 || at >= 49 {
		t.Fatalf("the other key ran at position %d of %d: the busy key kept the worker through its queue", at, len(order))
	}
}

// TestAHeldRecordWaitsForItsRelease: a held record keeps its key waiting and
// the commit below it until released; other keys run meanwhile.
func TestAHeldRecordWaitsForItsRelease(t *testing.T) {
	t.Parallel()
	releases := make(chan Release, 1)
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: 1,
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) Outcome {
			log.start(r)
			defer log.end(r)
			if r.Offset == 0 {
				out, rel := Hold(ctx)
				releases <- rel
				return out
			}
			return Done()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, []string{"a", "a", "b", "c"}))
	rel := <-releases
	kafkatest.WaitFor(t, 10*time.Second, "the other keys to run", func() bool { return log.total() == 3 })
	if log.count[[2]int64{0, 1}] != 0 {
		t.Fatal("the held key ran its next record")
	}
	if got := gen.committed(0); got > 0 {
		t.Fatalf("committed %d past the held record", got)
	}
	rel.Finish()
	rel.Finish() // twice: harmless
	kafkatest.WaitFor(t, 10*time.Second, "the held key to go on and everything to commit", func() bool { return gen.committed(0) == 4 })
	log.check(t, 4)
	select { // a released record is not in flight: the drain must not wait for it
	case err := <-revokeAsync(rt, 0):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("revocation after a released hold did not finish its drain")
	}
}

// TestAPanickingHandlerRestartsItsKeyAndRunsTheRecordAgain: supervision
// still guards raw handlers: the key actor restarts and the record runs
// again, in order, with the next attempt.
func TestAPanickingHandlerRestartsItsKeyAndRunsTheRecordAgain(t *testing.T) {
	t.Parallel()
	var attempts sync.Map
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) Outcome {
			attempts.Store(r.Offset, attempt)
			if r.Offset == 1 && attempt == 1 {
				panic("boom")
			}
			log.start(r)
			log.end(r)
			return Done()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, []string{"a", "a", "a", "b"}))
	kafkatest.WaitFor(t, 10*time.Second, "every record to finish", func() bool { return gen.committed(0) == 4 })
	log.check(t, 4)
	if a, _ := attempts.Load(int64(1)); a != 2 {
		t.Errorf("the record that panicked ran as attempt %v, want 2", a)
	}
}

func TestShutdownTimeoutCancelsAndNamesWhatWasLeft(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	var started atomic.Int32
	rt := newTestRuntime(t, Config{
		ShutdownTimeout: 200 * time.Millisecond,
		Handler: handler(func(ctx context.Context, r *kafka.Record) {
			if r.Offset == 3 {
				started.Add(1)
				<-g.ch // ignores cancellation
			}
		}),
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keysN("k", 10)))
	kafkatest.WaitFor(t, 10*time.Second, "the stuck record to start", func() bool { return started.Load() == 1 })
	kafkatest.WaitFor(t, 10*time.Second, "the other records to finish", func() bool { return statsOf(rt, 0).Buffered == 1 })
	began := time.Now()
	err := rt.Shutdown()
	took := time.Since(began)
	if !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("Shutdown returned %v, want ErrShutdownTimeout", err)
	}
	if !strings.Contains(err.Error(), `t/0@3 (key "k3")`) {
		t.Errorf("error %q does not name the record left (t/0@3, key k3)", err)
	}
	if took > 200*time.Millisecond+time.Second {
		t.Errorf("shutdown took %v with a 200ms timeout", took)
	}
	if got := gen.committed(0); got != 3 {
		t.Errorf("committed %d, want 3: what finished, and not the stuck record", got)
	}
}

// TestRevocationCommitsWhatFinishedSinceTheLastCommitPoint: the commit point
// (the offset with the records finished above it) is refreshed at most once
// per commit spacing, so when a revocation comes it may be older than the
// watermark. The drain's final commit must carry the watermark as it is, or
// the next owner runs again what finished after the point.
func TestRevocationCommitsWhatFinishedSinceTheLastCommitPoint(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	g := newGate(t)
	log := newExecLog()
	// A long interval spaces commit points a minute/10 apart: none is
	// refreshed during the test but the one it sets.
	rt := newTestRuntime(t, Config{Concurrency: 2, CommitInterval: time.Minute, Handler: heldAt(0, g, log)})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	rt.mu.Lock()
	p := rt.parts[partitionID{"t", 0}]
	rt.mu.Unlock()
	kafkatest.WaitFor(t, 10*time.Second, "offsets 1-9 to finish while 0 runs", func() bool { return log.total() == 10 && p.inFlight() == 1 })
	// The point the supervisor would have published had the spacing
	// passed while 0 ran.
	meta, _ := commitmeta.Encode(0, []commitmeta.Run{{First: 1, Last: 9}})
	p.point.Store(&commitPoint{offset: 0, meta: meta})
	g.open()
	kafkatest.WaitFor(t, 10*time.Second, "offset 0 to finish", func() bool { return p.committable.Load() == 10 })
	if err := <-revokeAsync(rt, 0); err != nil {
		t.Fatal(err)
	}
	last := gen.lastCommit(0)
	if last.Offset != 10 || last.Metadata != "" {
		t.Fatalf("final commit %d %q, want 10 with no metadata: every record finished, none may run again", last.Offset, last.Metadata)
	}
}

// TestAFinalCommitAfterARacingRoundKeepsTheDrainsFinishedSet: a committer
// round lists the partitions it commits before one is revoked, and may
// commit after that partition's drain ended, with the drain's final state.
// The final commit that follows must carry that state again, not the older
// commit point at the same offset: the next owner would run again what
// finished above it. Offset 0 runs long, so the drain does not wait for it
// and the committable offset stays where the last point put it.
func TestAFinalCommitAfterARacingRoundKeepsTheDrainsFinishedSet(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	g := newGate(t)
	log := newExecLog()
	// An hour's interval: no commit point is refreshed during the test
	// but the first, (0, nothing finished).
	rt := newTestRuntime(t, Config{Concurrency: 2, CommitInterval: time.Hour, Handler: heldAt(0, g, log),
		LongRunning: func(r *kafka.Record) bool { return r.Offset == 0 }})
	defer g.open()
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	rt.mu.Lock()
	p := rt.parts[partitionID{"t", 0}]
	rt.mu.Unlock()
	kafkatest.WaitFor(t, 10*time.Second, "offsets 1-9 to finish while 0 runs", func() bool { return log.total() == 10 && p.inFlight() == 1 })

	// Revoke, in its steps, with the round between the drain and the
	// final commit.
	ps := rt.take([]TopicPartition{{"t", 0}})
	rt.system.Root.Send(p.pid, &revoke{})
	select {
	case <-p.drained:
	case <-time.After(10 * time.Second):
		t.Fatal("the drain did not end; it must not wait for a long-running record")
	}
	if err := rt.committer.commit(ps); err != nil {
		t.Fatal(err)
	}
	if err := rt.release(ps, nil); err != nil {
		t.Fatal(err)
	}
	last := gen.lastCommit(0)
	if got, want := commitmeta.Decode(last.Offset, last.Metadata), []commitmeta.Run{{First: 1, Last: 9}}; last.Offset != 0 || !slices.Equal(got, want) {
		t.Fatalf("final commit %d %q (finished %v), want 0 with 1-9 finished: the next owner would run them again", last.Offset, last.Metadata, got)
	}
}

// TestNextOwnerSkipsRecordsFinishedAboveTheWatermark: a revocation drops a
// buffered record while later records of other keys finished; the commit
// stops at the dropped one, and its metadata lets the next owner skip the
// finished ones, so only the dropped record runs again.
func TestNextOwnerSkipsRecordsFinishedAboveTheWatermark(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "a", "b", "c", "d", "e", "f", "g", "h", "i"}
	g := newGate(t)
	first := newExecLog()
	rt := newTestRuntime(t, Config{Concurrency: 2, Handler: heldAt(0, g, first)})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 10*time.Second, "offsets 2-9 to finish while 0 runs", func() bool { return first.total() == 9 })
	errc := revokeAsync(rt, 0)
	kafkatest.WaitFor(t, 10*time.Second, "revocation to begin", func() bool { return statsOf(rt, 0).Revoked })
	g.open()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	last := gen.lastCommit(0)
	if last.Offset != 1 {
		t.Fatalf("committed %d, want 1 (the dropped record)", last.Offset)
	}
	if got := commitmeta.Decode(last.Offset, last.Metadata); !slices.Equal(got, []commitmeta.Run{{First: 2, Last: 9}}) {
		t.Fatalf("commit metadata %q names finished %v, want 2..9", last.Metadata, got)
	}

	second := newExecLog()
	rt2 := newTestRuntime(t, Config{Handler: handler(func(ctx context.Context, r *kafka.Record) {
		second.start(r)
		second.end(r)
	})})
	src := newMemSource("t", 0, keys)
	src.next = 1
	gen2 := newMemGeneration()
	if err := rt2.Assign(Assignment{Topic: "t", Start: 1, StartMetadata: last.Metadata, Source: src, Generation: gen2}); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 10*time.Second, "the next owner to commit the end", func() bool { return gen2.committed(0) == 10 })
	if n := second.total(); n != 1 || second.count[[2]int64{0, 1}] != 1 {
		t.Fatalf("next owner ran %d records (%v); want only the dropped offset 1", n, second.count)
	}
}

// TestPeriodicCommitsCarryTheFinishedSetAcrossACrash: no revocation, no
// drain: the process just dies while offset 0 runs. The periodic commits
// already carried the records finished above it, so the next owner runs
// only the record that was running and the one queued behind it.
func TestPeriodicCommitsCarryTheFinishedSetAcrossACrash(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "a", "b", "c", "d", "e", "f", "g", "h", "i"}
	g := newGate(t) // never opened before the "crash"
	first := newExecLog()
	rt := newTestRuntime(t, Config{Concurrency: 2, CommitInterval: 50 * time.Millisecond, Handler: heldAt(0, g, first)})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 10*time.Second, "a periodic commit at 0 listing 2-9 as finished", func() bool {
		last := gen.lastCommit(0)
		return last.Offset == 0 && slices.Equal(commitmeta.Decode(0, last.Metadata), []commitmeta.Run{{First: 2, Last: 9}})
	})
	last := gen.lastCommit(0) // the crash: rt is never revoked or shut down

	second := newExecLog()
	rt2 := newTestRuntime(t, Config{Handler: handler(func(ctx context.Context, r *kafka.Record) {
		second.start(r)
		second.end(r)
	})})
	gen2 := newMemGeneration()
	if err := rt2.Assign(Assignment{Topic: "t", Start: last.Offset, StartMetadata: last.Metadata,
		Source: newMemSource("t", 0, keys), Generation: gen2}); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 10*time.Second, "the next owner to commit the end", func() bool { return gen2.committed(0) == 10 })
	if n := second.total(); n != 2 || second.count[[2]int64{0, 0}] != 1 || second.count[[2]int64{0, 1}] != 1 {
		t.Fatalf("next owner ran %d records (%v); want only offsets 0 (running at the crash) and 1 (queued behind it)", n, second.count)
	}
}

// TestNoCommitDropsTheFinishedSet: the committable offset can move past the
// last commit point before the next point is published. A commit of that
// offset alone would drop the records listed as finished above it (here,
// ones the previous owner finished, handed over in the start metadata), and
// a crash would run them again; the committer commits only points.
func TestNoCommitDropsTheFinishedSet(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	start, _ := commitmeta.Encode(0, []commitmeta.Run{{First: 5, Last: 9}})
	g := newGate(t)
	rt := newTestRuntime(t, Config{Concurrency: 4, CommitInterval: time.Minute, Handler: heldAt(2, g, newExecLog())})
	gen := newMemGeneration()
	if err := rt.Assign(Assignment{Topic: "t", Start: 0, StartMetadata: start, Source: newMemSource("t", 0, keys), Generation: gen}); err != nil {
		t.Fatal(err)
	}
	rt.mu.Lock()
	p := rt.parts[partitionID{"t", 0}]
	rt.mu.Unlock()
	kafkatest.WaitFor(t, 10*time.Second, "offsets 0, 1, 3 and 4 to finish while 2 runs", func() bool {
		return p.committable.Load() == 2 && p.inFlight() == 1 && p.outstanding.Load() == 1
	})
	// The state between two points: the point is older than the
	// committable offset, and was committed already.
	old, _ := commitmeta.Encode(1, []commitmeta.Run{{First: 3, Last: 9}})
	p.point.Store(&commitPoint{offset: 1, meta: old})
	p.committed.Store(1)
	p.committedMeta.Store(&old)
	if err := rt.committer.commit([]*partition{p}); err != nil {
		t.Fatal(err)
	}
	for _, c := range gen.commitsOf(0) {
		var missing []int64
		finished := commitmeta.Decode(c.Offset, c.Metadata)
		for o := max(c.Offset, 5); o <= 9; o++ {
			if !slices.ContainsFunc(finished, func(r commitmeta.Run) bool { return r.First <= o && o <= r.Last }) {
				missing = append(missing, o)
			}
		}
		if len(missing) > 0 {
			t.Fatalf("commit %d %q leaves out finished offsets %v: a crash would run them again", c.Offset, c.Metadata, missing)
		}
	}
}

func TestAssignRefusesAPartitionItHolds(t *testing.T) {
	t.Parallel()
	rt := newTestRuntime(t, Config{Handler: handler(func(context.Context, *kafka.Record) {})})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, nil))
	err := rt.Assign(Assignment{Topic: "t", Partition: 0, Source: newMemSource("t", 0, nil), Generation: gen})
	if !errors.Is(err, ErrAssigned) {
		t.Fatalf("second Assign of t/0: %v, want ErrAssigned", err)
	}
}

// Finished records too scattered for either metadata encoding: the commit
// carries the offset alone, and the fallback is counted.
func TestAFinishedSetThatDoesNotFitIsCountedAndLeftOut(t *testing.T) {
	t.Parallel()
	// Offset 0 is held; every odd offset waits behind it on its key, every
	// even one finishes: 15,000 runs over a 30,000-offset span, more than
	// a 4 KB base64 bitset covers (about 24,000).
	keys := make([]string, 30_000)
	for i := range keys {
		keys[i] = "held"
		if i%2 == 0 && i > 0 {
			keys[i] = "k" + strconv.Itoa(i)
		}
	}
	g := newGate(t)
	rt := newTestRuntime(t, Config{Concurrency: 4, CommitInterval: 50 * time.Millisecond, MaxBuffered: 100_000, MaxSpan: 200_000,
		Handler: heldAt(0, g, newExecLog())})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 30*time.Second, "a commit fallback to be counted", func() bool { return statsOf(rt, 0).MetadataFallbacks > 0 })
	kafkatest.WaitFor(t, 10*time.Second, "offset 0 to be committed alone", func() bool {
		last := gen.lastCommit(0)
		return last.Offset == 0 && last.Metadata == ""
	})
	g.open()
}
