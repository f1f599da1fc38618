package actors

import (
	"encoding/base64"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// watermark tracks which offsets of one partition finished, and answers the
// committable offset: the first offset not yet finished, or the fetch
// position when everything handed out has finished. It is the one place that
// decides what may be committed.
//
// Finished offsets above the committable one are a bitset, one bit per
// offset, so a slow record at the head costs a bit per record read past it,
// not a record held in memory: the runtime bounds the span (fetch position
// minus committable) separately, and much higher than the records it holds.
// Offsets without a record (compaction, transaction markers) count as
// finished. Marking is O(1); the committable offset moves a word at a time.
//
// A watermark is not safe for concurrent use; its supervisor owns it.
type watermark struct {
	origin int64    // the offset of bit 0 of words[0], a multiple of 64
	words  []uint64 // bit o-origin set: offset o finished or holds no record
	base   int64    // committable: every offset below it finished
	next   int64    // fetch position: offsets from here on are not yet known
}

// newWatermark starts at the offset reading starts from; a negative start
// (the log start, not yet known) is replaced by the first offset seen.
func newWatermark(start int64) *watermark {
	return &watermark{origin: start &^ 63, base: start, next: start}
}

// markFinished records offsets an earlier owner finished (from its commit
// metadata), so that they are never handed out again.
func (w *watermark) markFinished(runs []offsetRun) {
	for _, r := range runs {
		for o := max(r.first, w.base); o <= r.last; o++ {
			w.set(o)
		}
	}
}

// add registers a record handed out at offset; offsets must increase. It
// reports whether an earlier owner already finished it: then it must not
// run, and it needs no done.
func (w *watermark) add(offset int64) (finishedBefore bool) {
	w.advance(offset)
	finishedBefore = w.isSet(offset)
	w.next = offset + 1
	w.advanceBase()
	return finishedBefore
}

// advance moves the fetch position to next: the offsets it passes hold no
// record for us. It never moves back.
func (w *watermark) advance(next int64) {
	if w.next < 0 || (w.base == w.next && next > w.next && int((next-w.origin)>>6) >= len(w.words)) {
		// Nothing is pending and the jump passes every tracked bit (or the
		// log start is only known now): start afresh at next, so a long
		// gap in a compacted log costs no bits.
		w.origin, w.base, w.next = next&^63, next, next
		w.words = w.words[:0]
		return
	}
	for o := w.next; o < next; o++ {
		w.set(o)
	}
	if next > w.next {
		w.next = next
		w.advanceBase()
	}
}

// done marks the record at offset finished. Offsets outside the handed-out
// range are ignored, and so is a second done.
func (w *watermark) done(offset int64) {
	if offset < w.base || offset >= w.next {
		return
	}
	w.set(offset)
	if offset == w.base {
		w.advanceBase()
	}
}

// committable is the offset it is safe to commit: every record below it
// finished.
func (w *watermark) committable() int64 { return w.base }

// span is how far reading has gone past the committable offset.
func (w *watermark) span() int64 { return max(w.next-w.base, 0) }

// finishedAbove appends the runs of finished offsets between the committable
// offset and the fetch position: after a crash or a revocation these need
// not run again.
func (w *watermark) finishedAbove(dst []offsetRun) []offsetRun {
	for o := w.base; o < w.next; {
		for o < w.next && !w.isSet(o) {
			o++
		}
		first := o
		for o < w.next && w.isSet(o) {
			o++
		}
		if o > first {
			dst = append(dst, offsetRun{first: first, last: o - 1})
		}
	}
	return dst
}

func (w *watermark) isSet(o int64) bool {
	i := (o - w.origin) >> 6
	return o >= w.origin && i < int64(len(w.words)) && w.words[i]&(1<<uint((o-w.origin)&63)) != 0
}

func (w *watermark) set(o int64) {
	if o < w.origin {
		return // below the committable offset: finished already
	}
	i := int((o - w.origin) >> 6)
	for i >= len(w.words) {
		w.words = append(w.words, 0)
	}
	w.words[i] |= 1 << uint((o-w.origin)&63)
}

// advanceBase moves the committable offset over finished offsets, up to the
// fetch position, and drops the words wholly below it.
func (w *watermark) advanceBase() {
	for w.base < w.next {
		i := int((w.base - w.origin) >> 6)
		if i >= len(w.words) {
			break
		}
		b := uint((w.base - w.origin) & 63)
		if unfinished := ^w.words[i] >> b; unfinished != 0 {
			w.base += int64(bits.TrailingZeros64(unfinished))
			break
		}
		w.base += int64(64 - b)
	}
	w.base = min(w.base, w.next)
	if k := int((w.base - w.origin) >> 6); k > 0 && 2*k >= len(w.words) {
		n := copy(w.words, w.words[min(k, len(w.words)):])
		clear(w.words[n:])
		w.words = w.words[:n]
		w.origin += int64(k) << 6
	}
}

// offsetRun is the finished offsets first..last, both included.
type offsetRun struct{ first, last int64 }

// finishedPrefix and bitsetPrefix mark ordo's commit metadata, so metadata
// written by other tools is never misread: run lengths, or a bitset.
const (
	finishedPrefix = "ordo1:"
	bitsetPrefix   = "ordo2:"
)

// maxFinishedMetadata stays under Kafka's default offset.metadata.max.bytes
// (4096).
const maxFinishedMetadata = 4000

// encodeFinished writes the runs of finished offsets above the committable
// offset as commit metadata, in the smaller of two encodings: run lengths
// ("gap+length" per run, the gap counted from the end of the previous run,
// the first from committable), or a bitset (bit i set when committable+1+i
// finished, base64). When neither fits Kafka's metadata limit it returns ""
// and fits false: the commit carries the watermark alone, which costs
// re-runs after a crash, never loss. Runs must be increasing, apart and
// above committable.
func encodeFinished(committable int64, runs []offsetRun) (meta string, fits bool) {
	if len(runs) == 0 {
		return "", true
	}
	rle := []byte(finishedPrefix)
	prevEnd := committable
	for i, r := range runs {
		if i > 0 {
			rle = append(rle, ',')
		}
		rle = strconv.AppendInt(rle, r.first-prevEnd, 10)
		rle = append(rle, '+')
		rle = strconv.AppendInt(rle, r.last-r.first+1, 10)
		prevEnd = r.last + 1
		if len(rle) > maxFinishedMetadata {
			break // the bitset may still fit
		}
	}
	span := runs[len(runs)-1].last - committable // bits for committable+1 .. last
	bitsetLen := maxFinishedMetadata + 1
	if span > 0 && span <= 8*maxFinishedMetadata {
		bitsetLen = len(bitsetPrefix) + base64.RawStdEncoding.EncodedLen(int((span+7)/8))
	}
	switch {
	case len(rle) <= maxFinishedMetadata && len(rle) <= bitsetLen:
		return string(rle), true
	case bitsetLen <= maxFinishedMetadata:
		bits := make([]byte, (span+7)/8)
		for _, r := range runs {
			for o := max(r.first, committable+1); o <= r.last; o++ {
				i := o - committable - 1
				bits[i/8] |= 1 << uint(i%8)
			}
		}
		return bitsetPrefix + base64.RawStdEncoding.EncodeToString(bits), true
	default:
		return "", false
	}
}

// decodeFinished reads what encodeFinished wrote for the same committable
// offset. Anything it does not understand yields nil: the records run again.
func decodeFinished(committable int64, meta string) []offsetRun {
	if rest, ok := strings.CutPrefix(meta, bitsetPrefix); ok {
		return decodeBitset(committable, rest)
	}
	rest, ok := strings.CutPrefix(meta, finishedPrefix)
	if !ok || rest == "" {
		return nil
	}
	var out []offsetRun
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
		out = append(out, offsetRun{first: first, last: first + n - 1})
		prevEnd, total = first+n, total+n
	}
	return out
}

func decodeBitset(committable int64, enc string) []offsetRun {
	if enc == "" || len(enc) > maxFinishedMetadata || committable > math.MaxInt64-8*maxFinishedMetadata {
		return nil
	}
	bits, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	var out []offsetRun
	for i := range int64(len(bits)) * 8 {
		if bits[i/8]&(1<<uint(i%8)) == 0 {
			continue
		}
		o := committable + 1 + i
		if n := len(out); n > 0 && out[n-1].last == o-1 {
			out[n-1].last = o
		} else {
			out = append(out, offsetRun{first: o, last: o})
		}
	}
	return out
}
