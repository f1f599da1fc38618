package main

import (
	"fmt"
	"math"
	"slices"
)

// event is a fault the runner caused: a worker killed (SIGKILL or SIGTERM)
// or the broker restarted.
type event struct {
	what string // "SIGKILL", "SIGTERM" or "restart"
	proc string // the worker, empty for a broker restart
	at   int64  // when the signal was sent or the restart began (ns)
	// died is when the process was seen to exit (ns), or when the broker
	// answered again.
	died int64
	// committed is the group's committed offset per partition, read just
	// before the fault: nothing below it can run again.
	committed map[int]int64
	// settled bounds when the rebalances the fault causes are over: the
	// fault, plus a session timeout for the group to notice a dead
	// member, plus a rebalance timeout for the others to rejoin, plus a
	// replacement's join.
	settled int64
}

type verdict struct {
	jobs            int
	kills           int
	lost            int
	orderViolations int
	overlaps        int
	duplicates      int
	bound           int
	strictBound     int
	examples        []string
}

func (v *verdict) note(format string, args ...any) {
	if len(v.examples) < 10 {
		v.examples = append(v.examples, fmt.Sprintf(format, args...))
	}
}

func (v *verdict) ok() bool {
	return v.lost == 0 && v.orderViolations == 0 && v.overlaps == 0 && v.duplicates <= v.bound
}

func (v *verdict) String() string {
	return fmt.Sprintf("chaos: jobs=%d kills=%d lost=%d order_violations=%d overlaps=%d duplicates=%d bound=%d",
		v.jobs, v.kills, v.lost, v.orderViolations, v.overlaps, v.duplicates, v.bound)
}

// check judges the executions of jobs (key i%keys, seq i/keys for i below
// jobs) against ordo's guarantees. Definitions:
//
//   - An execution is one run of a job in one process: its S line. Its
//     interval is [start, end], where end is its E line's time or, when the
//     process died with the job running, the time the process was seen
//     to exit (an upper bound of when it stopped). A job is completed when
//     some execution of it ended with outcome "ok".
//   - lost: jobs never completed.
//   - order violation: for a key and a seq s > 0, the earliest start of
//     any execution of s comes before the earliest completion of s-1 (or
//     s-1 never completed). Re-runs are counted correctly because only the
//     first completion of s-1 matters: a redelivered s-1 that runs again
//     after s is a duplicate, not a reordering, while a run of s that began
//     before s-1 had ever finished is one.
//   - overlap: two executions of the same key whose intervals intersect.
//   - duplicates: executions beyond the first of each job.
//   - bound: the most duplicates the faults can explain. A fault (a kill, a
//     replacement joining, a broker restart) makes every member of the
//     group give up its partitions (with eager rebalancing; cooperative
//     moves fewer, so the bound stays an upper one), and a
//     partition's next owner starts at its committed offset: the contiguous
//     watermark. So every job at or above the committed offset read just
//     before the fault, started by any process before the fault's
//     rebalances settled, may run once more; the bound sums that over the
//     faults, plus jobs the enqueuer resent.
//   - strictBound: the bound semantics.md states, "only the job in flight
//     at revocation can run twice": per kill, the jobs the killed process
//     had started at or above its partitions' committed offsets. It holds
//     only when no revocation drops buffered jobs below finished ones;
//     without finished offsets in the commit metadata, the jobs finished
//     above the first dropped one run again. Reported, not enforced.
func check(jobs, keys int, execs []*execution, events []event, resent int) *verdict {
	v := &verdict{jobs: jobs}
	for _, e := range events {
		if e.what != "restart" {
			v.kills++
		}
	}
	died := map[string]int64{}
	for _, e := range events {
		if e.proc != "" {
			died[e.proc] = e.died
		}
	}
	type job struct {
		key string
		seq int
	}
	byJob := map[job][]*execution{}
	byKey := map[string][]*execution{}
	for _, e := range execs {
		if e.end == 0 {
			e.end = died[e.proc]
			if e.end == 0 {
				e.end = math.MaxInt64 // never ended and its process never died: running at the end
			}
		}
		byJob[job{e.key, e.seq}] = append(byJob[job{e.key, e.seq}], e)
		byKey[e.key] = append(byKey[e.key], e)
	}
	firstDone := func(j job) (int64, bool) {
		best, ok := int64(math.MaxInt64), false
		for _, e := range byJob[j] {
			if e.outcome == "ok" && e.end < best {
				best, ok = e.end, true
			}
		}
		return best, ok
	}
	for i := range jobs {
		j := job{keyName(i % keys), i / keys}
		if _, ok := firstDone(j); !ok {
			v.lost++
			v.note("lost: %s#%d (%d executions)", j.key, j.seq, len(byJob[j]))
		}
		if n := len(byJob[j]); n > 1 {
			v.duplicates += n - 1
		}
		if j.seq == 0 {
			continue
		}
		runs := byJob[j]
		if len(runs) == 0 {
			continue
		}
		firstStart := slices.MinFunc(runs, func(a, b *execution) int { return cmpInt64(a.start, b.start) }).start
		prevDone, ok := firstDone(job{j.key, j.seq - 1})
		if !ok || firstStart < prevDone {
			v.orderViolations++
			v.note("order: %s#%d started at %d before %s#%d first completed (%d)", j.key, j.seq, firstStart, j.key, j.seq-1, prevDone)
		}
	}
	for key, runs := range byKey {
		slices.SortFunc(runs, func(a, b *execution) int { return cmpInt64(a.start, b.start) })
		maxEnd, maxBy := int64(math.MinInt64), (*execution)(nil)
		for _, e := range runs {
			if e.start < maxEnd {
				v.overlaps++
				v.note("overlap: %s#%d in %s [%d,%d] and %s#%d in %s [%d,%d]", key, maxBy.seq, maxBy.proc, maxBy.start, maxBy.end,
					key, e.seq, e.proc, e.start, e.end)
			}
			if e.end > maxEnd {
				maxEnd, maxBy = e.end, e
			}
		}
	}
	for _, ev := range events {
		strict, all := map[[2]int64]bool{}, map[[2]int64]bool{}
		for _, e := range execs {
			if c, ok := ev.committed[e.partition]; ok && e.offset < c {
				continue
			}
			at := [2]int64{int64(e.partition), e.offset}
			if e.proc == ev.proc || (ev.proc == "" && e.start <= ev.died) {
				strict[at] = true
			}
			if e.start <= ev.settled {
				all[at] = true
			}
		}
		v.strictBound += len(strict)
		v.bound += len(all)
	}
	v.strictBound += resent
	v.bound += resent
	return v
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
