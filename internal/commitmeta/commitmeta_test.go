package commitmeta

import (
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		committable int64
		finished    []Run
		prefix      string
	}{
		{10, []Run{{11, 11}}, "ordo"}, // either: the smaller
		{10, []Run{{12, 14}, {20, 20}, {22, 23}}, "ordo"},
		{0, []Run{{1, 5}, {1000, 1001}}, RunsPrefix}, // sparse: run lengths are smaller
	}
	// Every other offset of 10,000: run lengths would take ~40 KB, the
	// bitset 1.7 KB.
	var scattered []Run
	for o := int64(101); o < 10_100; o += 2 {
		scattered = append(scattered, Run{o, o})
	}
	cases = append(cases, struct {
		committable int64
		finished    []Run
		prefix      string
	}{100, scattered, BitsetPrefix})
	for _, c := range cases {
		meta, fits := Encode(c.committable, c.finished)
		if !fits || !strings.HasPrefix(meta, c.prefix) || len(meta) > MaxLen {
			t.Errorf("%d runs above %d: %d bytes %.20q (fits %v), want %s and at most %d bytes",
				len(c.finished), c.committable, len(meta), meta, fits, c.prefix, MaxLen)
			continue
		}
		if got := Decode(c.committable, meta); !slices.Equal(got, c.finished) {
			t.Errorf("%d runs above %d: decoded %d runs", len(c.finished), c.committable, len(got))
		}
	}
	if meta, fits := Encode(5, nil); meta != "" || !fits {
		t.Error("no finished offsets must encode to no metadata")
	}
	for _, bad := range []string{"", "x", "ordo1:", "ordo1:1+", "ordo1:-1+2", "ordo1:1+0", "ordo1:a+b", "other:1+2", "ordo2:", "ordo2:!!"} {
		if got := Decode(0, bad); got != nil {
			t.Errorf("metadata %q decoded to %v, want nothing", bad, got)
		}
	}
	// Scattered over a span wider than a 4 KB bitset (32,000 offsets)
	// and too many runs to list: the commit carries the watermark alone.
	var wide []Run
	for o := int64(1); o < 60_000; o += 2 {
		wide = append(wide, Run{o, o})
	}
	if meta, fits := Encode(0, wide); fits || meta != "" {
		t.Fatalf("a finished set that fits no encoding gave %d bytes (fits %v), want none", len(meta), fits)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(int64(3), "ordo1:1+2,0+5")
	f.Add(int64(3), "ordo2:BQ")
	f.Fuzz(func(t *testing.T, committable int64, meta string) {
		got := Decode(committable, meta)
		for i := range got {
			if got[i].Last < got[i].First || (i > 0 && got[i].First <= got[i-1].Last) {
				t.Fatalf("decoded runs not increasing: %v", got[:i+1])
			}
		}
		if len(got) > 0 {
			// The committable offset itself never finished; what is
			// above it must survive a re-encoding in either form.
			above := clipAbove(committable, got)
			if meta2, fits := Encode(committable, above); fits && !slices.Equal(merged(Decode(committable, meta2)), merged(above)) {
				t.Fatal("decoded runs do not round-trip")
			}
		}
	})
}

// merged joins adjacent runs, so equal sets of offsets compare equal.
func merged(runs []Run) []Run {
	var out []Run
	for _, r := range runs {
		if n := len(out); n > 0 && out[n-1].Last+1 == r.First {
			out[n-1].Last = r.Last
			continue
		}
		out = append(out, r)
	}
	return out
}

func clipAbove(committable int64, runs []Run) []Run {
	var out []Run
	for _, r := range runs {
		if r.Last <= committable {
			continue
		}
		out = append(out, Run{max(r.First, committable+1), r.Last})
	}
	return out
}
