package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// batchLog checks batches as they run: each must be the next records of one
// key, with one rule, starting at the key's first unfinished record; and it
// counts what finished.
type batchLog struct {
	mu       sync.Mutex
	byKey    map[string][]int64 // the key's offsets, in order
	done     map[string]int     // how many of byKey[k] finished
	finished map[int64]int      // offset → times finished
	sizes    []int
	errs     []string
}

func newBatchLog(keys []string) *batchLog {
	l := &batchLog{byKey: map[string][]int64{}, done: map[string]int{}, finished: map[int64]int{}}
	for i, k := range keys {
		l.byKey[k] = append(l.byKey[k], int64(i))
	}
	return l
}

// begin checks a batch about to run.
func (l *batchLog) begin(batch []BatchRecord, rule func(*kafka.Record) *BatchRule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sizes = append(l.sizes, len(batch))
	key := string(batch[0].Record.Key)
	want := l.byKey[key][l.done[key]:]
	for i, it := range batch {
		switch {
		case string(it.Record.Key) != key:
			l.errs = append(l.errs, fmt.Sprintf("a batch mixed keys %q and %q", key, it.Record.Key))
		case rule(it.Record) != rule(batch[0].Record):
			l.errs = append(l.errs, fmt.Sprintf("a batch of key %q mixed rules at offset %d", key, it.Record.Offset))
		case i >= len(want) || it.Record.Offset != want[i]:
			l.errs = append(l.errs, fmt.Sprintf("key %q ran offset %d as batch item %d; want the key's next records from %v", key, it.Record.Offset, i, want[:min(len(want), 3)]))
		}
	}
}

// finish records that the first n records of batch finished.
func (l *batchLog) finish(batch []BatchRecord, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, it := range batch[:n] {
		l.finished[it.Record.Offset]++
		l.done[string(it.Record.Key)]++
	}
}

func (l *batchLog) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.finished)
}

func (l *batchLog) check(t *testing.T, want int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs[:min(len(l.errs), 5)] {
		t.Error(e)
	}
	if len(l.finished) != want {
		t.Errorf("%d records finished, want %d", len(l.finished), want)
	}
	for off, n := range l.finished {
		if n != 1 {
			t.Errorf("record %d finished %d times", off, n)
		}
	}
}

// TestBatchesKeepKeyOrderAcrossRetriesAndPartialFailures: records of two
// batch rules and of none, interleaved within keys, with batches that fail
// as a whole or from an index on: every batch is the key's next records
// with one rule, everything finishes once, in order, and a failure charges
// only the record it names.
func TestBatchesKeepKeyOrderAcrossRetriesAndPartialFailures(t *testing.T) {
	t.Parallel()
	const n = 6000
	keys := randomKeys(n, 40, 3)
	ruleA, ruleB := &BatchRule{Max: 8}, &BatchRule{Max: 3}
	rule := func(r *kafka.Record) *BatchRule {
		switch r.Offset % 10 {
		case 7:
			return ruleB
		case 9:
			return nil
		}
		return ruleA
	}
	log := newBatchLog(keys)
	singles := newExecLog()
	var attempts sync.Map // offset → highest attempt seen
	var failures atomic.Int64
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	roll := func(n int) int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(n) }
	rt := newTestRuntime(t, Config{
		Concurrency: 8,
		MaxBuffered: 400,
		Batch:       rule,
		BatchHandler: func(ctx context.Context, batch []BatchRecord) BatchOutcome {
			log.begin(batch, rule)
			for _, it := range batch {
				if prev, ok := attempts.Load(it.Record.Offset); ok && prev.(int) > it.Attempt {
					t.Errorf("record %d ran as attempt %d after attempt %d", it.Record.Offset, it.Attempt, prev)
				}
				attempts.Store(it.Record.Offset, it.Attempt)
			}
			switch roll(10) {
			case 0: // the whole batch fails
				failures.Add(1)
				return BatchFailed(0, Retry(time.Millisecond))
			case 1: // fails from an index on
				failures.Add(1)
				i := roll(len(batch))
				log.finish(batch, i)
				return BatchFailed(i, Retry(time.Millisecond))
			case 2: // the record at an index finishes, the rest run again
				i := roll(len(batch))
				log.finish(batch, i+1)
				return BatchFailed(i, Done())
			}
			log.finish(batch, len(batch))
			return BatchDone()
		},
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) Outcome {
			if rule(r) != nil {
				t.Errorf("record %d of a batch rule ran alone", r.Offset)
			}
			singles.start(r)
			singles.end(r)
			log.finish([]BatchRecord{{Record: r}}, 1)
			return Done()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 30*time.Second, "every record to finish and commit", func() bool { return gen.committed(0) == n })
	log.check(t, n)
	if failures.Load() == 0 {
		t.Fatal("no batch failed: the test tested nothing")
	}
	retried := 0
	attempts.Range(func(_, a any) bool {
		if a.(int) > 1 {
			retried++
		}
		return true
	})
	if retried == 0 {
		t.Error("no record ran as a second attempt")
	}
	log.mu.Lock()
	biggest := slices.Max(log.sizes)
	log.mu.Unlock()
	if biggest < 2 || biggest > ruleA.Max {
		t.Errorf("the biggest batch held %d records; want 2..%d", biggest, ruleA.Max)
	}
}

// TestRevocationLetsTheBatchInFlightFinishAndDropsTheRest: a revoked key
// finishes its batch in flight, commits it, and runs nothing it queued.
func TestRevocationLetsTheBatchInFlightFinishAndDropsTheRest(t *testing.T) {
	t.Parallel()
	g := newGate(t)
	var ran []int64
	var mu sync.Mutex
	rule := &BatchRule{Max: 4}
	rt := newTestRuntime(t, Config{
		Concurrency: 1,
		Batch:       func(*kafka.Record) *BatchRule { return rule },
		Handler:     func(context.Context, *kafka.Record, int) Outcome { return Done() },
		BatchHandler: func(ctx context.Context, batch []BatchRecord) BatchOutcome {
			mu.Lock()
			for _, it := range batch {
				ran = append(ran, it.Record.Offset)
			}
			mu.Unlock()
			<-g.ch
			return BatchDone()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, slices.Repeat([]string{"a"}, 10)))
	kafkatest.WaitFor(t, 10*time.Second, "a batch to run and the rest to queue", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) > 0 && statsOf(rt, 0).Buffered == 10
	})
	errc := revokeAsync(rt, 0)
	kafkatest.WaitFor(t, 10*time.Second, "revocation to begin", func() bool { return statsOf(rt, 0).Revoked })
	g.open()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(ran, []int64{0, 1, 2, 3}) {
		t.Fatalf("ran %v; want only the batch in flight, [0 1 2 3]", ran)
	}
	if got := gen.committed(0); got != 4 {
		t.Fatalf("committed %d after revocation; want 4, past the batch in flight", got)
	}
}

// TestMaxBatchWaitBoundsTheWaitAndZeroNeverWaits: a key waits for its batch
// to fill no longer than the rule's Wait, not at all once the batch is full,
// and never with Wait 0.
func TestMaxBatchWaitBoundsTheWaitAndZeroNeverWaits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		wait     time.Duration
		arrivals int // records added at once
		// the first batch's start after the records were added
		atLeast, atMost time.Duration
		size            int
	}{
		{"a lone record waits out Wait", 400 * time.Millisecond, 1, 400 * time.Millisecond, 3 * time.Second, 1},
		{"a full batch does not wait", 20 * time.Second, 3, 0, 3 * time.Second, 3},
		{"Wait 0 never waits", 0, 1, 0, 3 * time.Second, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			type run struct {
				at   time.Time
				size int
			}
			runs := make(chan run, 10)
			rule := &BatchRule{Max: 3, Wait: tc.wait}
			rt := newTestRuntime(t, Config{
				Batch:   func(*kafka.Record) *BatchRule { return rule },
				Handler: func(context.Context, *kafka.Record, int) Outcome { return Done() },
				BatchHandler: func(ctx context.Context, batch []BatchRecord) BatchOutcome {
					runs <- run{time.Now(), len(batch)}
					return BatchDone()
				},
			})
			src := newMemSource("t", 0, nil)
			assign(t, rt, newMemGeneration(), src)
			added := time.Now()
			src.add("t", 0, slices.Repeat([]string{"a"}, tc.arrivals)...)
			select {
			case r := <-runs:
				if took := r.at.Sub(added); took < tc.atLeast || took > tc.atMost {
					t.Errorf("the batch started %v after its records arrived; want %v..%v", took, tc.atLeast, tc.atMost)
				}
				if r.size != tc.size {
					t.Errorf("the batch held %d records, want %d", r.size, tc.size)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no batch ran")
			}
		})
	}
}

// TestWaitingForABatchEndsWhenAnotherRuleQueues: a record that cannot join
// the batch ends the wait at once.
func TestWaitingForABatchEndsWhenAnotherRuleQueues(t *testing.T) {
	t.Parallel()
	ruleA := &BatchRule{Max: 10, Wait: 20 * time.Second}
	ran := make(chan []int64, 4)
	rt := newTestRuntime(t, Config{
		Batch: func(r *kafka.Record) *BatchRule {
			if r.Offset == 2 {
				return nil
			}
			return ruleA
		},
		Handler: func(_ context.Context, r *kafka.Record, _ int) Outcome {
			ran <- []int64{r.Offset}
			return Done()
		},
		BatchHandler: func(ctx context.Context, batch []BatchRecord) BatchOutcome {
			var offs []int64
			for _, it := range batch {
				offs = append(offs, it.Record.Offset)
			}
			ran <- offs
			return BatchDone()
		},
	})
	src := newMemSource("t", 0, nil)
	gen := newMemGeneration()
	assign(t, rt, gen, src)
	src.add("t", 0, "a", "a", "a")
	for _, want := range [][]int64{{0, 1}, {2}} {
		select {
		case got := <-ran:
			if !slices.Equal(got, want) {
				t.Fatalf("ran %v, want %v", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v did not run within 5s: the wait did not end when a record of another rule queued", want)
		}
	}
}

// TestAPanickingBatchHandlerRunsTheBatchAgain: a raw batch handler that
// panics is restarted; its batch runs again, in order, its first record
// charged.
func TestAPanickingBatchHandlerRunsTheBatchAgain(t *testing.T) {
	t.Parallel()
	keys := []string{"a", "a", "a"}
	log := newBatchLog(keys)
	var firstAttempts []int
	var panicked atomic.Bool
	rule := &BatchRule{Max: 10}
	rt := newTestRuntime(t, Config{
		Batch:   func(*kafka.Record) *BatchRule { return rule },
		Handler: func(context.Context, *kafka.Record, int) Outcome { return Done() },
		BatchHandler: func(ctx context.Context, batch []BatchRecord) BatchOutcome {
			log.begin(batch, func(*kafka.Record) *BatchRule { return rule })
			firstAttempts = append(firstAttempts, batch[0].Attempt)
			if panicked.CompareAndSwap(false, true) {
				panic("boom")
			}
			log.finish(batch, len(batch))
			return BatchDone()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 10*time.Second, "every record to finish", func() bool { return gen.committed(0) == 3 })
	log.check(t, 3)
	if len(firstAttempts) < 2 || firstAttempts[len(firstAttempts)-1] != 2 {
		t.Errorf("the batch's first record ran as attempts %v; want its rerun as attempt 2", firstAttempts)
	}
}

// TestABatchHoldsOneKeyWhenKeysShareAVirtualPartition: with
// MaxVirtualPartitions, keys share key actors, and a batch still holds one
// key's records.
func TestABatchHoldsOneKeyWhenKeysShareAVirtualPartition(t *testing.T) {
	t.Parallel()
	const n = 3000
	keys := randomKeys(n, 30, 7)
	rule := &BatchRule{Max: 50}
	var mixed, multi atomic.Int64
	gen := newMemGeneration()
	rt := newTestRuntime(t, Config{
		MaxVirtualPartitions: 2,
		Batch:                func(*kafka.Record) *BatchRule { return rule },
		Handler:              func(context.Context, *kafka.Record, int) Outcome { return Done() },
		BatchHandler: func(ctx context.Context, batch []BatchRecord) BatchOutcome {
			for _, it := range batch[1:] {
				if string(it.Record.Key) != string(batch[0].Record.Key) {
					mixed.Add(1)
				}
			}
			if len(batch) > 1 {
				multi.Add(1)
			}
			return BatchDone()
		},
	})
	assign(t, rt, gen, newMemSource("t", 0, keys))
	kafkatest.WaitFor(t, 30*time.Second, "every record to finish", func() bool { return gen.committed(0) == n })
	if mixed.Load() > 0 {
		t.Fatalf("%d records joined a batch of another key", mixed.Load())
	}
	if multi.Load() == 0 {
		t.Fatal("no batch held more than one record: the test tested nothing")
	}
}
