package actors

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestWatermarkUnderRandomCompletionOrder checks, for many random runs, that
// the committable offset is always exactly the first unfinished offset (so it
// never passes an unfinished record), and the fetch position once all
// finished. Offsets have gaps, as compacted topics do.
func TestWatermarkUnderRandomCompletionOrder(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		start := int64(r.IntN(1000))
		w := NewWatermark(start)
		var offsets []int64
		var seqs []uint64
		off := start
		n := 1 + r.IntN(3000)
		for range n {
			off += 1 + int64(r.IntN(3)) // gaps of 0–2 offsets
			offsets = append(offsets, off)
			seqs = append(seqs, w.Add(off))
		}
		w.Advance(off + 5)
		finished := make([]bool, n)
		order := r.Perm(n)
		for _, i := range order {
			w.Done(seqs[i])
			finished[i] = true
			want := off + 5
			if j := slices.Index(finished, false); j >= 0 {
				want = offsets[j]
			}
			if got := w.Committable(); got != want {
				t.Fatalf("seed %d: committable %d, want %d (first unfinished)", seed, got, want)
			}
		}
		if w.Pending() != 0 {
			t.Fatalf("seed %d: %d pending after all finished", seed, w.Pending())
		}
	}
}

func TestWatermarkStartsAtStartAndIgnoresUnknownSeq(t *testing.T) {
	w := NewWatermark(42)
	if got := w.Committable(); got != 42 {
		t.Fatalf("empty watermark committable %d, want 42", got)
	}
	s := w.Add(42)
	w.Done(s + 10) // unknown: must not mark anything
	if got := w.Committable(); got != 42 {
		t.Fatalf("committable %d after unknown Done, want 42", got)
	}
	w.Done(s)
	w.Done(s) // twice: harmless
	if got := w.Committable(); got != 43 {
		t.Fatalf("committable %d, want 43", got)
	}
}

func FuzzWatermark(f *testing.F) {
	f.Add([]byte{3, 1, 2, 0})
	f.Fuzz(func(t *testing.T, order []byte) {
		n := len(order)
		if n == 0 || n > 512 {
			return
		}
		w := NewWatermark(0)
		seqs := make([]uint64, n)
		for i := range n {
			seqs[i] = w.Add(int64(i))
		}
		finished := make([]bool, n)
		for _, b := range order {
			i := int(b) % n
			w.Done(seqs[i])
			finished[i] = true
			want := int64(n)
			if j := slices.Index(finished, false); j >= 0 {
				want = int64(j)
			}
			if got := w.Committable(); got != want {
				t.Fatalf("committable %d, want %d", got, want)
			}
		}
	})
}
