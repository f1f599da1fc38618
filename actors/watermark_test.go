package actors

import (
	"math/rand/v2"
	"slices"
	"strings"
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
	if runs := w.finishedAbove(nil); !slices.Equal(runs, []offsetRun{{1, n - 1}}) {
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
	w.markFinished([]offsetRun{{12, 13}, {20, 20}})
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
				for o := r.first; o <= r.last; o++ {
					if o%3 == 0 && !finished[o/3] {
						t.Fatalf("offset %d listed finished above the watermark, but it is not", o)
					}
				}
			}
		}
	})
}

func TestFinishedMetadataRoundTrip(t *testing.T) {
	cases := []struct {
		committable int64
		finished    []offsetRun
		prefix      string
	}{
		{10, []offsetRun{{11, 11}}, "ordo"}, // either: the smaller
		{10, []offsetRun{{12, 14}, {20, 20}, {22, 23}}, "ordo"},
		{0, []offsetRun{{1, 5}, {1000, 1001}}, finishedPrefix}, // sparse: run lengths are smaller
	}
	// Every other offset of 10,000: run lengths would take ~40 KB, the
	// bitset 1.7 KB.
	var scattered []offsetRun
	for o := int64(101); o < 10_100; o += 2 {
		scattered = append(scattered, offsetRun{o, o})
	}
	cases = append(cases, struct {
		committable int64
		finished    []offsetRun
		prefix      string
	}{100, scattered, bitsetPrefix})
	for _, c := range cases {
		meta, fits := encodeFinished(c.committable, c.finished)
		if !fits || !strings.HasPrefix(meta, c.prefix) || len(meta) > maxFinishedMetadata {
			t.Errorf("%d runs above %d: %d bytes %.20q (fits %v), want %s and at most %d bytes",
				len(c.finished), c.committable, len(meta), meta, fits, c.prefix, maxFinishedMetadata)
			continue
		}
		if got := decodeFinished(c.committable, meta); !slices.Equal(got, c.finished) {
			t.Errorf("%d runs above %d: decoded %d runs", len(c.finished), c.committable, len(got))
		}
	}
	if meta, fits := encodeFinished(5, nil); meta != "" || !fits {
		t.Error("no finished offsets must encode to no metadata")
	}
	for _, bad := range []string{"", "x", "ordo1:", "ordo1:1+", "ordo1:-1+2", "ordo1:1+0", "ordo1:a+b", "other:1+2", "ordo2:", "ordo2:!!"} {
		if got := decodeFinished(0, bad); got != nil {
			t.Errorf("metadata %q decoded to %v, want nothing", bad, got)
		}
	}
	// Scattered over a span wider than a 4 KB bitset (32,000 offsets)
	// and too many runs to list: the commit carries the watermark alone.
	var wide []offsetRun
	for o := int64(1); o < 60_000; o += 2 {
		wide = append(wide, offsetRun{o, o})
	}
	if meta, fits := encodeFinished(0, wide); fits || meta != "" {
		t.Fatalf("a finished set that fits no encoding gave %d bytes (fits %v), want none", len(meta), fits)
	}
}

func FuzzDecodeFinished(f *testing.F) {
	f.Add(int64(3), "ordo1:1+2,0+5")
	f.Add(int64(3), "ordo2:BQ")
	f.Fuzz(func(t *testing.T, committable int64, meta string) {
		got := decodeFinished(committable, meta)
		for i := range got {
			if got[i].last < got[i].first || (i > 0 && got[i].first <= got[i-1].last) {
				t.Fatalf("decoded runs not increasing: %v", got[:i+1])
			}
		}
		if len(got) > 0 {
			// The committable offset itself never finished; what is
			// above it must survive a re-encoding in either form.
			above := clipAbove(committable, got)
			if meta2, fits := encodeFinished(committable, above); fits && !slices.Equal(merged(decodeFinished(committable, meta2)), merged(above)) {
				t.Fatal("decoded runs do not round-trip")
			}
		}
	})
}

// merged joins adjacent runs, so equal sets of offsets compare equal.
func merged(runs []offsetRun) []offsetRun {
	var out []offsetRun
	for _, r := range runs {
		if n := len(out); n > 0 && out[n-1].last+1 == r.first {
			out[n-1].last = r.last
			continue
		}
		out = append(out, r)
	}
	return out
}

func clipAbove(committable int64, runs []offsetRun) []offsetRun {
	var out []offsetRun
	for _, r := range runs {
		if r.last <= committable {
			continue
		}
		out = append(out, offsetRun{max(r.first, committable+1), r.last})
	}
	return out
}
