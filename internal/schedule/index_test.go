package schedule

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestScheduleIndexDispatchesByTimeThenOffsetAndHonoursReplacementAndCancel(t *testing.T) {
	x := newScheduleIndex()
	x.add(1, 10, 300)
	x.add(2, 11, 100)
	x.add(3, 12, 100) // same instant as key 2: after it, by offset
	x.add(4, 13, 200)
	x.add(1, 14, 50) // key 1 rescheduled: the newer record wins
	if !x.remove(4) || x.remove(4) {
		t.Fatal("remove of a pending key must say true once, then false")
	}
	x.add(5, 15, math.MinInt64) // unreadable: due at once
	if got := x.len(); got != 4 {
		t.Fatalf("len = %d, want 4", got)
	}
	if got := x.lowest(); got != 11 {
		t.Fatalf("lowest pending offset = %d, want 11", got)
	}
	if got := x.popDue(40, 10); len(got) != 1 || got[0].offset != 15 {
		t.Fatalf("due at 40: %+v; want the unreadable record only", got)
	}
	got := x.popDue(1000, 10)
	var offsets []int64
	for _, e := range got {
		offsets = append(offsets, e.offset)
	}
	if want := []int64{14, 11, 12}; !equalInts(offsets, want) {
		t.Fatalf("due at 1000: offsets %v; want %v (by time, then offset; replaced and removed ones never)", offsets, want)
	}
	if x.len() != 0 || x.next() != math.MaxInt64 || x.lowest() != math.MaxInt64 {
		t.Fatalf("after dispatching everything: len %d next %d lowest %d", x.len(), x.next(), x.lowest())
	}
}

// dueWithin finds exactly the pending jobs due in (after, until], whatever
// the heap's shape: the read-ahead reads their records back.
func TestScheduleIndexDueWithinFindsThePendingJobsOfAWindow(t *testing.T) {
	x := newScheduleIndex()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		x.add(uint64(i%3000), int64(i), rng.Int64N(10_000)) // keys below 2000 are replaced
	}
	for k := range uint64(100) {
		x.remove(k)
	}
	for _, w := range [][2]int64{{math.MinInt64, 2500}, {2500, 2600}, {9990, 20_000}, {3000, 3000}} {
		got := map[int64]bool{}
		for _, e := range x.dueWithin(w[0], w[1], nil) {
			if got[e.offset] {
				t.Fatalf("window %v: offset %d twice", w, e.offset)
			}
			got[e.offset] = true
		}
		want := 0
		for _, e := range x.due {
			if !x.pending(e.key, e.offset) || e.runAt > w[1] || (w[0] != math.MinInt64 && e.runAt <= w[0]) {
				continue
			}
			want++
			if !got[e.offset] {
				t.Fatalf("window %v: pending offset %d due at %d is missing", w, e.offset, e.runAt)
			}
		}
		if len(got) != want {
			t.Fatalf("window %v: %d jobs, want %d", w, len(got), want)
		}
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The bound: a dispatcher holding 1M pending jobs stays well under
// 256 MB. The index is the only per-job state.
func TestScheduleIndexOfAMillionJobsFitsInAHundredMegabytes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million-entry index")
	}
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	x := newScheduleIndex()
	for i := range n {
		x.add(rng.Uint64(), int64(i), rng.Int64N(int64(3600e9)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := after.HeapAlloc - before.HeapAlloc
	t.Logf("index of %d pending jobs: %.1f MB heap (%.0f bytes a job)", x.len(), float64(used)/1e6, float64(used)/n)
	if used > 100<<20 {
		t.Errorf("index of %d jobs holds %d MB; want at most 100 MB", n, used>>20)
	}
	runtime.KeepAlive(x)
}
