package schedule

import (
	"math"
)

// scheduleIndex is a Dispatcher's index of one schedules partition's pending
// jobs: for each, when it is due, the offset of its record and a hash of its
// key (the job id), and nothing of its payload, which is read back from
// Kafka when it is due. A pending job costs about 65 bytes (a heap entry,
// with the slice's spare capacity, and a map slot), so a million cost about
// 65 MB (TestScheduleIndexOfAMillionJobsFitsInAHundredMegabytes).
//
// A record with a key already pending replaces it (the newer schedule wins,
// as compaction will keep only it); a tombstone removes it. Entries left in
// the heap by replacements and removals are stale and skipped; the heap is
// rebuilt when they outnumber the live ones.
type scheduleIndex struct {
	byKey map[uint64]int64 // key hash → offset of its pending record
	due   dueHeap
}

// scheduleEntry is a pending job. runAt is in Unix nanoseconds;
// math.MinInt64 marks a record that could not be read as a schedule, due at
// once so it is dead-lettered.
type scheduleEntry struct {
	runAt  int64
	offset int64
	key    uint64
}

func newScheduleIndex() *scheduleIndex {
	return &scheduleIndex{byKey: map[uint64]int64{}}
}

// add indexes the record at offset, replacing a pending one of the same key.
func (x *scheduleIndex) add(key uint64, offset, runAt int64) {
	x.byKey[key] = offset
	x.due.push(scheduleEntry{runAt: runAt, offset: offset, key: key})
	x.compact()
}

// remove drops the pending job of key, saying whether there was one.
func (x *scheduleIndex) remove(key uint64) bool {
	if _, ok := x.byKey[key]; !ok {
		return false
	}
	delete(x.byKey, key)
	x.compact()
	return true
}

// len is the number of pending jobs.
func (x *scheduleIndex) len() int { return len(x.byKey) }

// popDue removes and returns up to max jobs due at now, by due time, then
// offset: jobs due at the same time come in the order they were scheduled.
func (x *scheduleIndex) popDue(now int64, max int) []scheduleEntry {
	var out []scheduleEntry
	for len(out) < max && len(x.due) > 0 && x.due[0].runAt <= now {
		e := x.due.pop()
		if x.pending(e.key, e.offset) {
			delete(x.byKey, e.key)
			out = append(out, e)
		}
	}
	return out
}

// next returns when the earliest pending job is due, in Unix nanoseconds,
// or math.MaxInt64 when none is.
func (x *scheduleIndex) next() int64 {
	for len(x.due) > 0 {
		e := x.due[0]
		if x.pending(e.key, e.offset) {
			return e.runAt
		}
		x.due.pop()
	}
	return math.MaxInt64
}

// pending tells whether the record at offset is key's pending job.
func (x *scheduleIndex) pending(key uint64, offset int64) bool {
	off, ok := x.byKey[key]
	return ok && off == offset
}

// dueWithin appends to dst the pending jobs due after after (any, when after
// is math.MinInt64) and by until, in no order. It walks only the part of
// the heap due by until.
func (x *scheduleIndex) dueWithin(after, until int64, dst []scheduleEntry) []scheduleEntry {
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= len(x.due) || x.due[i].runAt > until {
			continue // nor any of its children
		}
		e := x.due[i]
		if (after == math.MinInt64 || e.runAt > after) && x.pending(e.key, e.offset) {
			dst = append(dst, e)
		}
		stack = append(stack, 2*i+1, 2*i+2)
	}
	return dst
}

// lowest returns the lowest offset of a pending job, or math.MaxInt64 when
// none is: the dispatcher commits no further, so that a new owner reads
// every pending job again.
func (x *scheduleIndex) lowest() int64 {
	low := int64(math.MaxInt64)
	for _, off := range x.byKey {
		low = min(low, off)
	}
	return low
}

// compact rebuilds the heap from the live entries when stale ones
// outnumber them, so that cancelled far-future jobs do not hold memory.
func (x *scheduleIndex) compact() {
	if len(x.due) < 1024 || len(x.due) < 2*len(x.byKey) {
		return
	}
	live := x.due[:0]
	for _, e := range x.due {
		if x.pending(e.key, e.offset) {
			live = append(live, e)
		}
	}
	clear(x.due[len(live):])
	x.due = live
	for i := len(x.due)/2 - 1; i >= 0; i-- {
		x.due.down(i)
	}
}

// dueHeap is a binary min-heap of entries by due time, then offset. It is
// container/heap's algorithm on the concrete type, which saves boxing each
// entry into an interface: a third of the index's memory.
type dueHeap []scheduleEntry

func (h dueHeap) less(i, j int) bool {
	if h[i].runAt != h[j].runAt {
		return h[i].runAt < h[j].runAt
	}
	return h[i].offset < h[j].offset
}

func (h *dueHeap) push(e scheduleEntry) {
	*h = append(*h, e)
	for i := len(*h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		(*h)[i], (*h)[parent] = (*h)[parent], (*h)[i]
		i = parent
	}
}

func (h *dueHeap) pop() scheduleEntry {
	old := *h
	e := old[0]
	last := len(old) - 1
	old[0] = old[last]
	*h = old[:last]
	h.down(0)
	return e
}

func (h dueHeap) down(i int) {
	for {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h.less(l, small) {
			small = l
		}
		if r < len(h) && h.less(r, small) {
			small = r
		}
		if small == i {
			return
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
}
