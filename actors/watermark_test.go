package actors

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ordo-go/ordo/internal/commitmeta"
)

// TestWatermarkUnderRandomCompletionOrder checks, for many random runs, that
// the committable offset is always exactly the first unfinished offset (so it
// never passes an unfinished record), and the fetch position once all
// finished. Offsets have gaps, as compacted topics do.
func TestWatermarkUnderRandomCompletionOrder(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		start := int64(r.IntN(1000))
		w := newWatermark(start)
		var offsets []int64
		off := start
		n := 1 + r.IntN(3000)
		for range n {
			off += 1 + int64(r.IntN(3)) // gaps of 0–2 offsets
			offsets = append(offsets, off)
			if w.add(off) {
				t.Fatalf("seed %d: offset %d reported finished before it ran", seed, off)
			}
		}
		w.advance(off + 5)
		finished := make([]bool, n)
		order := r.Perm(n)
		for _, i := range order {
			w.done(offsets[i])
			finished[i] = true
			want := off + 5
			if j := slices.Index(finished, false); j >= 0 {
				want = offsets[j]
			}
			if got := w.committable(); got != want {
				t.Fatalf("seed %d: committable %d, want %d (first unfinished)", seed, got, want)
			}
			if got := w.span(); got != off+5-want {
				t.Fatalf("seed %d: span %d, want %d", seed, got, off+5-want)
			}
		}
	}
}

func TestWatermarkStartsAtStartAndIgnoresUnknownOffsets(t *testing.T) {
	w := newWatermark(42)
	if got := w.committable(); got != 42 {
		t.Fatalf("empty watermark committable %d, want 42", got)
	}
	w.add(42)
	w.done(52) // never handed out: must not mark anything
	w.done(41) // below: already committable
	if got := w.committable(); got != 42 {
		t.Fatalf("committable %d after unknown done, want 42", got)
	}
	w.done(42)
	w.done(42) // twice: harmless
	if got := w.committable(); got != 43 {
		t.Fatalf("committable %d, want 43", got)
	}
}

func TestWatermarkLearnsTheLogStartFromTheFirstRecord(t *testing.T) {
	w := newWatermark(-2) // no committed offset, log start not known yet
	w.add(1000)
	if got := w.committable(); got != 1000 {
		t.Fatalf("committable %d, want 1000 (the first record, pending)", got)
	}
	w.done(1000)
	if got := w.committable(); got != 1001 {
		t.Fatalf("committable %d, want 1001", got)
	}
}

// TestWatermarkHoldsASlowHeadCheaply: a million records finish above one
// unfinished record; the committable offset stays at it, the finished ones
// cost a bit each, and the metadata names them as one run.
func TestWatermarkHoldsASlowHeadCheaply(t *testing.T) {
	w := newWatermark(0)
	const n = 1_000_000
	for o := int64(0); o < n; o++ {
		w.add(o)
		if o > 0 {
			w.done(o)
		}
	}
	if got := w.committable(); got != 0 {
		t.Fatalf("committable %d, want 0 (the slow head)", got)
	}
	if words := len(w.words); words > n/64+2 {
		t.Fatalf("%d words for %d offsets: not one bit each", words, n)
	}
	if runs := w.finishedAbove(nil); !slices.Equal(runs, []commitmeta.Run{{First: 1, Last: n - 1}}) {
		t.Fatalf("finished above the head: %v, want one run 1..%d", runs, n-1)
	}
	w.done(0)
	if got := w.committable(); got != n {
		t.Fatalf("committable %d after the head finished, want %d", got, n)
	}
	if len(w.words) > 1 {
		t.Errorf("%d words kept after everything finished", len(w.words))
	}
}

func TestWatermarkSkipsWhatAnEarlierOwnerFinished(t *testing.T) {
	w := newWatermark(10)
	w.markFinished([]commitmeta.Run{{First: 12, Last: 13}, {First: 20, Last: 20}})
	var ran []int64
	for o := int64(10); o < 22; o++ {
		if !w.add(o) {
			ran = append(ran, o)
		}
	}
	if want := []int64{10, 11, 14, 15, 16, 17, 18, 19, 21}; !slices.Equal(ran, want) {
		t.Fatalf("handed out %v, want %v", ran, want)
	}
	for _, o := range ran {
		w.done(o)
	}
	if got := w.committable(); got != 22 {
		t.Fatalf("committable %d, want 22", got)
	}
}

func FuzzWatermark(f *testing.F) {
	f.Add([]byte{3, 1, 2, 0})
	f.Fuzz(func(t *testing.T, order []byte) {
		n := len(order)
		if n == 0 || n > 512 {
			return
		}
		w := newWatermark(0)
		for i := range n {
			w.add(int64(3 * i)) // gaps of two offsets between records
		}
		finished := make([]bool, n)
		for _, b := range order {
			i := int(b) % n
			w.done(int64(3 * i))
			finished[i] = true
			want := int64(3*(n-1) + 1)
			if j := slices.Index(finished, false); j >= 0 {
				want = int64(3 * j)
			}
			if got := w.committable(); got != want {
				t.Fatalf("committable %d, want %d", got, want)
			}
			for _, r := range w.finishedAbove(nil) {
				for o := r.First; o <= r.Last; o++ {
					if o%3 == 0 && !finished[o/3] {
						t.Fatalf("offset %d listed finished above the watermark, but it is not", o)
					}
				}
			}
		}
	})
}
