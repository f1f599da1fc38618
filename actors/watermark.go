package actors

import (
	"math/bits"

	"github.com/ordo-go/ordo/internal/commitmeta"
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
func (w *watermark) markFinished(runs []commitmeta.Run) {
	for _, r := range runs {
		for o := max(r.First, w.base); o <= r.Last; o++ {
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
func (w *watermark) finishedAbove(dst []commitmeta.Run) []commitmeta.Run {
	for o := w.base; o < w.next; {
		for o < w.next && !w.isSet(o) {
			o++
		}
		first := o
		for o < w.next && w.isSet(o) {
			o++
		}
		if o > first {
			dst = append(dst, commitmeta.Run{First: first, Last: o - 1})
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
