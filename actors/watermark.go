package actors

import (
	"strconv"
	"strings"
)

// Watermark tracks, for one partition, which handed-out records finished,
// and answers the committable offset: the first offset not yet finished, or
// the fetch position when every record handed out has finished. It is the one
// place that decides what may be committed.
//
// Records are added in offset order and may finish in any order. Each Add
// returns a sequence number that Done takes back, so marking is O(1).
// Watermark is not safe for concurrent use; its PartitionSupervisor owns it.
type Watermark struct {
	entries []watermarkEntry // entries[i] has sequence number base+i
	head    int              // entries before head have been popped
	base    uint64
	next    int64 // fetch position: offset after the last added record
}

type watermarkEntry struct {
	offset int64
	done   bool
}

// NewWatermark starts a watermark at the offset where reading starts.
func NewWatermark(start int64) *Watermark { return &Watermark{next: start} }

// Add registers a record handed out for processing. Offsets must increase.
func (w *Watermark) Add(offset int64) (seq uint64) {
	seq = w.base + uint64(len(w.entries))
	w.entries = append(w.entries, watermarkEntry{offset: offset})
	if offset >= w.next {
		w.next = offset + 1
	}
	return seq
}

// Advance moves the fetch position forward, past offsets that hold no
// records for us. It never moves it back.
func (w *Watermark) Advance(next int64) {
	if next > w.next {
		w.next = next
	}
}

// Done marks the record with sequence number seq finished. Unknown or
// already popped sequence numbers are ignored.
func (w *Watermark) Done(seq uint64) {
	if seq < w.base+uint64(w.head) || seq >= w.base+uint64(len(w.entries)) {
		return
	}
	w.entries[seq-w.base].done = true
	for w.head < len(w.entries) && w.entries[w.head].done {
		w.head++
	}
	if w.head == len(w.entries) {
		w.base += uint64(len(w.entries))
		w.entries = w.entries[:0]
		w.head = 0
	} else if w.head > 1024 && w.head*2 > len(w.entries) {
		n := copy(w.entries, w.entries[w.head:])
		w.entries = w.entries[:n]
		w.base += uint64(w.head)
		w.head = 0
	}
}

// Committable is the offset it is safe to commit: every record below it
// finished.
func (w *Watermark) Committable() int64 {
	if w.head < len(w.entries) {
		return w.entries[w.head].offset
	}
	return w.next
}

// Pending is the number of records added and not yet finished, counting
// finished ones that wait behind an unfinished one.
func (w *Watermark) Pending() int { return len(w.entries) - w.head }

// FinishedAbove lists the finished offsets above the committable offset, in
// increasing order: after a crash these need not run again.
func (w *Watermark) FinishedAbove() []int64 {
	var out []int64
	for _, e := range w.entries[w.head:] {
		if e.done {
			out = append(out, e.offset)
		}
	}
	return out
}

// finishedPrefix marks ordo's commit metadata, so metadata written by other
// tools is never misread.
const finishedPrefix = "ordo1:"

// maxFinishedMetadata stays under Kafka's default offset.metadata.max.bytes
// (4096); runs that do not fit are left out, which costs re-runs, not loss.
const maxFinishedMetadata = 4000

// EncodeFinished writes the finished offsets above the committable offset
// as commit metadata: runs of consecutive offsets, each as "gap+length"
// where gap counts from the end of the previous run (the first from
// committable). Finished offsets must be increasing and above committable.
func EncodeFinished(committable int64, finished []int64) string {
	if len(finished) == 0 {
		return ""
	}
	b := []byte(finishedPrefix)
	prevEnd := committable
	for i := 0; i < len(finished); {
		j := i + 1
		for j < len(finished) && finished[j] == finished[j-1]+1 {
			j++
		}
		run := strconv.AppendInt(nil, finished[i]-prevEnd, 10)
		run = append(run, '+')
		run = strconv.AppendInt(run, int64(j-i), 10)
		if len(b)+len(run)+1 > maxFinishedMetadata {
			break
		}
		if len(b) > len(finishedPrefix) {
			b = append(b, ',')
		}
		b = append(b, run...)
		prevEnd = finished[j-1] + 1
		i = j
	}
	return string(b)
}

// DecodeFinished reads what EncodeFinished wrote for the same committable
// offset. Anything it does not understand yields nil: the records run again.
func DecodeFinished(committable int64, meta string) []int64 {
	rest, ok := strings.CutPrefix(meta, finishedPrefix)
	if !ok || rest == "" {
		return nil
	}
	var out []int64
	prevEnd := committable
	for _, run := range strings.Split(rest, ",") {
		gapS, nS, ok := strings.Cut(run, "+")
		gap, err1 := strconv.ParseInt(gapS, 10, 64)
		n, err2 := strconv.ParseInt(nS, 10, 64)
		if !ok || err1 != nil || err2 != nil || gap < 0 || n < 1 || n > 1<<20 || len(out)+int(n) > 1<<20 {
			return nil
		}
		start := prevEnd + gap
		if start < prevEnd || start+n < start {
			return nil // overflow: not ours
		}
		for o := start; o < start+n; o++ {
			out = append(out, o)
		}
		prevEnd = start + n
	}
	return out
}
