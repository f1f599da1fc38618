package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
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

var _ = atomic.Int64{}
