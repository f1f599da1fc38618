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

func TestFinishedMetadataRoundTrip(t *testing.T) {
	cases := []struct {
		committable int64
		finished    []int64
	}{
		{10, []int64{11}},
		{10, []int64{12, 13, 14, 20, 22, 23}},
		{0, []int64{1, 2, 3, 4, 5, 1000, 1001}},
	}
	for _, c := range cases {
		meta := EncodeFinished(c.committable, c.finished)
		if got := DecodeFinished(c.committable, meta); !slices.Equal(got, c.finished) {
			t.Errorf("%v above %d: encoded %q, decoded %v", c.finished, c.committable, meta, got)
		}
	}
	if EncodeFinished(5, nil) != "" {
		t.Error("no finished offsets must encode to no metadata")
	}
	for _, bad := range []string{"", "x", "ordo1:", "ordo1:1+", "ordo1:-1+2", "ordo1:1+0", "ordo1:a+b", "other:1+2"} {
		if got := DecodeFinished(0, bad); got != nil {
			t.Errorf("metadata %q decoded to %v, want nothing", bad, got)
		}
	}
	// Scattered offsets beyond the metadata limit: a prefix is kept, and
	// what is kept is exact.
	var many []int64
	for o := int64(1); o < 20_000; o += 2 {
		many = append(many, o)
	}
	meta := EncodeFinished(0, many)
	if len(meta) > maxFinishedMetadata {
		t.Fatalf("metadata of %d bytes exceeds %d", len(meta), maxFinishedMetadata)
	}
	got := DecodeFinished(0, meta)
	if len(got) == 0 || !slices.Equal(got, many[:len(got)]) {
		t.Fatalf("truncated metadata decoded to %d offsets, not a prefix of the input", len(got))
	}
}

func FuzzDecodeFinished(f *testing.F) {
	f.Add(int64(3), "ordo1:1+2,0+5")
	f.Fuzz(func(t *testing.T, committable int64, meta string) {
		got := DecodeFinished(committable, meta)
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("decoded offsets not increasing: %v", got[:i+1])
			}
		}
		if len(got) > 0 && EncodeFinished(committable, got) == "" {
			t.Fatal("decoded offsets do not re-encode")
		}
	})
}
