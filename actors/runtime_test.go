package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

func (l *execLog) start(r kafka.Record) {
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

func (l *execLog) end(r kafka.Record) {
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

func TestRuntimeRunsEachRecordOnceInOrderPerKey(t *testing.T) {
	t.Parallel()
	const partitions, perPartition = 4, 5000
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: 16,
		MaxBuffered: 300,
		Handler: func(ctx context.Context, r kafka.Record) error {
			log.start(r)
			if r.Offset%7 == 0 {
				time.Sleep(time.Duration(r.Offset%3) * 100 * time.Microsecond)
			}
			log.end(r)
			return nil
		},
	})
	gen := newMemGeneration()
	var as []Assignment
	for p := range partitions {
		as = append(as, Assignment{Topic: "t", Partition: p, Start: 0,
			Source: newMemSource("t", p, randomKeys(perPartition, 50, uint64(p)))})
	}
	errc := make(chan error, 1)
	go func() { errc <- rt.Run(gen, as) }()
	waitFor(t, 30*time.Second, "all records to run", func() bool { return log.total() == partitions*perPartition })
	waitFor(t, 10*time.Second, "commits to reach the end", func() bool {
		for p := range partitions {
			if gen.committed(p) != perPartition {
				return false
			}
		}
		return true
	})
	gen.stopping = true
	close(gen.done)
	if err := <-errc; err != nil {
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

// startRun runs the runtime over the sources in the background.
func startRun(rt *Runtime, gen *memGeneration, sources ...*memSource) <-chan error {
	var as []Assignment
	for p, src := range sources {
		as = append(as, Assignment{Topic: "t", Partition: p, Start: 0, Source: src})
	}
	errc := make(chan error, 1)
	go func() { errc <- rt.Run(gen, as) }()
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
		Handler: func(ctx context.Context, r kafka.Record) error {
			log.start(r)
			log.end(r)
			return nil
		},
	})
	src := newMemSource("t", 0, keysN("k", 100))
	gen := newMemGeneration()
	errc := startRun(rt, gen, src)
	waitFor(t, 10*time.Second, "100 records to run", func() bool { return log.total() == 100 })
	if keys := statsOf(rt, 0).Keys; keys == 0 {
		t.Log("all keys already passivated")
	}
	waitFor(t, 10*time.Second, "idle key actors to be passivated", func() bool { return statsOf(rt, 0).Keys == 0 })

	src.add("t", 0, keysN("k", 100)...) // the same keys again: new actors
	waitFor(t, 10*time.Second, "200 records to run", func() bool { return log.total() == 200 })
	if keys := statsOf(rt, 0).Keys; keys == 0 {
		t.Error("no key actor alive right after new records; expected respawned actors")
	}
	waitFor(t, 10*time.Second, "commit of all 200", func() bool { return gen.committed(0) == 200 })
	close(gen.done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	log.check(t, 200)
}

func TestMaxVirtualPartitionsCapsKeyActorsAndConcurrency(t *testing.T) {
	t.Parallel()
	const slots = 3
	var running, maxRunning, maxKeys atomic.Int64
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency:          50,
		MaxVirtualPartitions: slots,
		Handler: func(ctx context.Context, r kafka.Record) error {
			n := running.Add(1)
			for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
			}
			log.start(r)
			time.Sleep(200 * time.Microsecond)
			log.end(r)
			running.Add(-1)
			return nil
		},
	})
	rt2 := rt
	src := newMemSource("t", 0, randomKeys(2000, 1000, 3))
	gen := newMemGeneration()
	errc := startRun(rt2, gen, src)
	waitFor(t, 30*time.Second, "2000 records to run", func() bool {
		if k := int64(statsOf(rt, 0).Keys); k > maxKeys.Load() {
			maxKeys.Store(k)
		}
		return log.total() == 2000
	})
	close(gen.done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	log.check(t, 2000)
	if maxKeys.Load() > slots || maxRunning.Load() > slots {
		t.Errorf("1000 keys capped at %d virtual partitions: saw %d key actors and %d records at once",
			slots, maxKeys.Load(), maxRunning.Load())
	}
	if maxRunning.Load() < 2 {
		t.Errorf("at most %d records ran at once; virtual partitions should run concurrently", maxRunning.Load())
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

func TestRevocationFinishesOnlyInFlightRecords(t *testing.T) {
	t.Parallel()
	const concurrency, buffer = 2, 20
	g := newGate(t)
	log := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: concurrency,
		MaxBuffered: buffer,
		Handler: func(ctx context.Context, r kafka.Record) error {
			log.start(r)
			<-g.ch
			log.end(r)
			return nil
		},
	})
	src := newMemSource("t", 0, randomKeys(50, 10, 9))
	gen := newMemGeneration()
	errc := startRun(rt, gen, src)
	waitFor(t, 10*time.Second, "slots full and buffer full", func() bool {
		s := statsOf(rt, 0)
		return s.InFlight == concurrency && s.Buffered == buffer
	})
	close(gen.done) // a rebalance
	waitFor(t, 10*time.Second, "revocation to begin", func() bool { return statsOf(rt, 0).Revoked })
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
// kafka-go #1398) returns another batch only after the generation ended.
type lateSource struct {
	gen     *memGeneration
	rt      *Runtime
	calls   atomic.Int32
	lateOff int64
}

func (s *lateSource) Fetch(ctx context.Context, max int) ([]kafka.Record, int64, error) {
	if s.calls.Add(1) == 1 {
		return []kafka.Record{{Topic: "t", Offset: 0, Key: []byte("a")}, {Topic: "t", Offset: 1, Key: []byte("b")}}, 2, nil
	}
	<-s.gen.done
	for !statsOf(s.rt, 0).Revoked {
		time.Sleep(time.Millisecond)
	}
	return []kafka.Record{{Topic: "t", Offset: s.lateOff, Key: []byte("a")}}, s.lateOff + 1, nil
}

func TestRecordsFetchedBeforeRevocationAreNeverRunAfterIt(t *testing.T) {
	t.Parallel()
	log := newExecLog()
	rt := newTestRuntime(t, Config{Handler: func(ctx context.Context, r kafka.Record) error {
		log.start(r)
		log.end(r)
		return nil
	}})
	gen := newMemGeneration()
	src := &lateSource{gen: gen, rt: rt, lateOff: 2}
	errc := make(chan error, 1)
	go func() { errc <- rt.Run(gen, []Assignment{{Topic: "t", Source: src}}) }()
	waitFor(t, 10*time.Second, "first batch to run", func() bool { return log.total() == 2 })
	close(gen.done)
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
	rt := newTestRuntime(t, Config{
		Concurrency: 4,
		MaxBuffered: buffer,
		Handler: func(ctx context.Context, r kafka.Record) error {
			log.start(r)
			time.Sleep(100 * time.Microsecond)
			log.end(r)
			return nil
		},
	})
	gen := newMemGeneration()
	errc := startRun(rt, gen, newMemSource("t", 0, randomKeys(3000, 200, 5)), newMemSource("t", 1, randomKeys(3000, 200, 6)))
	seen := 0
	waitFor(t, 60*time.Second, "6000 records to run", func() bool {
		for _, s := range rt.Stats() {
			seen = max(seen, s.Buffered)
		}
		return log.total() == 6000
	})
	peak := 0
	for _, s := range rt.Stats() {
		peak = max(peak, s.PeakBuffered)
	}
	close(gen.done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	log.check(t, 6000)
	if seen > buffer || peak > buffer {
		t.Fatalf("buffered records reached %d (sampled) / %d (peak gauge); bound is %d", seen, peak, buffer)
	}
	if peak < buffer {
		t.Errorf("peak buffered %d never reached the bound %d: the test did not exercise backpressure", peak, buffer)
	}
}

func TestShutdownTimeoutCancelsAndNamesWhatWasLeft(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	var started atomic.Int32
	rt := newTestRuntime(t, Config{
		ShutdownTimeout: 200 * time.Millisecond,
		Handler: func(ctx context.Context, r kafka.Record) error {
			if r.Offset == 3 {
				started.Add(1)
				<-g.ch // ignores cancellation
			}
			return nil
		},
	})
	gen := newMemGeneration()
	errc := startRun(rt, gen, newMemSource("t", 0, keysN("k", 10)))
	waitFor(t, 10*time.Second, "the stuck record to start", func() bool { return started.Load() == 1 })
	waitFor(t, 10*time.Second, "the other records to finish", func() bool { return statsOf(rt, 0).Buffered == 1 })
	gen.stopping = true
	began := time.Now()
	close(gen.done)
	err := <-errc
	took := time.Since(began)
	if !errors.Is(err, ErrShutdownTimeout) {
		t.Fatalf("Run returned %v, want ErrShutdownTimeout", err)
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

// TestNextOwnerSkipsRecordsFinishedAboveTheWatermark: a revocation drops a
// buffered record while later records of other keys finished; the commit
// stops at the dropped one, and its metadata lets the next owner skip the
// finished ones, so only the dropped record runs again.
func TestNextOwnerSkipsRecordsFinishedAboveTheWatermark(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "a", "b", "c", "d", "e", "f", "g", "h", "i"}
	g := newGate(t)
	first := newExecLog()
	rt := newTestRuntime(t, Config{
		Concurrency: 2,
		Handler: func(ctx context.Context, r kafka.Record) error {
			first.start(r)
			if r.Offset == 0 {
				<-g.ch
			}
			first.end(r)
			return nil
		},
	})
	gen := newMemGeneration()
	errc := startRun(rt, gen, newMemSource("t", 0, keys))
	waitFor(t, 10*time.Second, "offsets 2-9 to finish while 0 runs", func() bool { return first.total() == 9 })
	close(gen.done)
	waitFor(t, 10*time.Second, "revocation to begin", func() bool { return statsOf(rt, 0).Revoked })
	g.open()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	last := gen.lastCommit(0)
	if last.Offset != 1 {
		t.Fatalf("committed %d, want 1 (the dropped record)", last.Offset)
	}
	if got := DecodeFinished(last.Offset, last.Metadata); !slices.Equal(got, []int64{2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("commit metadata %q names finished %v, want 2..9", last.Metadata, got)
	}

	second := newExecLog()
	rt2 := newTestRuntime(t, Config{Handler: func(ctx context.Context, r kafka.Record) error {
		second.start(r)
		second.end(r)
		return nil
	}})
	src := newMemSource("t", 0, keys)
	src.next = 1
	gen2 := newMemGeneration()
	errc2 := make(chan error, 1)
	go func() {
		errc2 <- rt2.Run(gen2, []Assignment{{Topic: "t", Start: 1, StartMetadata: last.Metadata, Source: src}})
	}()
	waitFor(t, 10*time.Second, "the next owner to commit the end", func() bool { return gen2.committed(0) == 10 })
	close(gen2.done)
	if err := <-errc2; err != nil {
		t.Fatal(err)
	}
	if n := second.total(); n != 1 || second.count[[2]int64{0, 1}] != 1 {
		t.Fatalf("next owner ran %d records (%v); want only the dropped offset 1", n, second.count)
	}
}
