// Package commitmeta is ordo's commit metadata: the offsets above a
// committed offset that already finished, so that a partition's next owner,
// after a crash or a revocation, skips them instead of running them again.
// The runtime writes it with every commit; the chaos checker reads it to
// tell which executions a commit covered.
package commitmeta

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
)

// Run is the finished offsets First..Last, both included.
type Run struct{ First, Last int64 }

// RunsPrefix and BitsetPrefix mark ordo's commit metadata, so metadata
// written by other tools is never misread: run lengths, or a bitset.
const (
	RunsPrefix   = "ordo1:"
	BitsetPrefix = "ordo2:"
)

// MaxLen stays under Kafka's default offset.metadata.max.bytes
// (4096).
const MaxLen = 4000

// Encode writes the runs of finished offsets above the committable
// offset as commit metadata, in the smaller of two encodings: run lengths
// ("gap+length" per run, the gap counted from the end of the previous run,
// the first from committable), or a bitset (bit i set when committable+1+i
// finished, base64). When neither fits Kafka's metadata limit it returns ""
// and fits false: the commit carries the watermark alone, which costs
// re-runs after a crash, never loss. Runs must be increasing, apart and
// above committable.
func Encode(committable int64, runs []Run) (meta string, fits bool) {
	if len(runs) == 0 {
		return "", true
	}
	rle := []byte(RunsPrefix)
	prevEnd := committable
	for i, r := range runs {
		if i > 0 {
			rle = append(rle, ',')
		}
		rle = strconv.AppendInt(rle, r.First-prevEnd, 10)
		rle = append(rle, '+')
		rle = strconv.AppendInt(rle, r.Last-r.First+1, 10)
		prevEnd = r.Last + 1
		if len(rle) > MaxLen {
			break // the bitset may still fit
		}
	}
	span := runs[len(runs)-1].Last - committable // bits for committable+1 .. last
	bitsetLen := MaxLen + 1
	if span > 0 && span <= 8*MaxLen {
		bitsetLen = len(BitsetPrefix) + base64.RawStdEncoding.EncodedLen(int((span+7)/8))
	}
	switch {
	case len(rle) <= MaxLen && len(rle) <= bitsetLen:
		return string(rle), true
	case bitsetLen <= MaxLen:
		bits := make([]byte, (span+7)/8)
		for _, r := range runs {
			for o := max(r.First, committable+1); o <= r.Last; o++ {
				i := o - committable - 1
				bits[i/8] |= 1 << uint(i%8)
			}
		}
		return BitsetPrefix + base64.RawStdEncoding.EncodeToString(bits), true
	default:
		return "", false
	}
}

// Decode reads what Encode wrote for the same committable
// offset. Anything it does not understand yields nil: the records run again.
func Decode(committable int64, meta string) []Run {
	if rest, ok := strings.CutPrefix(meta, BitsetPrefix); ok {
		return decodeBitset(committable, rest)
	}
	rest, ok := strings.CutPrefix(meta, RunsPrefix)
	if !ok || rest == "" {
		return nil
	}
	var out []Run
	prevEnd, total := committable, int64(0)
	for _, run := range strings.Split(rest, ",") {
		gapS, nS, ok := strings.Cut(run, "+")
		gap, err1 := strconv.ParseInt(gapS, 10, 64)
		n, err2 := strconv.ParseInt(nS, 10, 64)
		if !ok || err1 != nil || err2 != nil || gap < 0 || n < 1 || n > 1<<20 || total+n > 1<<20 {
			return nil
		}
		first := prevEnd + gap
		if first < prevEnd || first+n < first {
			return nil // overflow: not ours
		}
		out = append(out, Run{First: first, Last: first + n - 1})
		prevEnd, total = first+n, total+n
	}
	return out
}

func decodeBitset(committable int64, enc string) []Run {
	if enc == "" || len(enc) > MaxLen || committable > math.MaxInt64-8*MaxLen {
		return nil
	}
	bits, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	var out []Run
	for i := range int64(len(bits)) * 8 {
		if bits[i/8]&(1<<uint(i%8)) == 0 {
			continue
		}
		o := committable + 1 + i
		if n := len(out); n > 0 && out[n-1].Last == o-1 {
			out[n-1].Last = o
		} else {
			out = append(out, Run{First: o, Last: o})
		}
	}
	return out
}
