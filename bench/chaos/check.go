package main

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/ordo-go/ordo/internal/commitmeta"
)

// event is a fault the runner caused: a worker killed (SIGKILL or SIGTERM),
// or a broker restarted or killed.
type event struct {
	what string // "SIGKILL", "SIGTERM", "restart" (the single broker), "leader-kill" or "controller-kill"
	proc string // the worker, empty for a broker fault
	node int    // the broker killed, for a cluster fault
	at   int64  // when the signal was sent or the restart began (ns)
	// died is when the process was seen to exit, or when the restarted
	// broker answered again (ns).
	died int64
	// committed is the group's committed offset per partition, read just
	// before the fault: nothing below it can run again.
	committed map[int]int64
	// settled bounds when the rebalances the fault causes are over: the
	// fault, plus a session timeout for the group to notice a dead
	// member, plus a rebalance timeout for the others to rejoin, plus a
	// replacement's join.
	settled int64
	// recovered is when the group has got over a broker fault: its
	// members found the coordinator again or rejoined (the fault's end
	// plus a session and a rebalance timeout).
	recovered int64
	// ends and leaders are, for a broker kill, each partition's end offset
	// and leader just before it.
	ends, leaders map[int]int64
}

func (e event) brokerFault() bool { return e.proc == "" }

type verdict struct {
	jobs            int
	kills           int // worker kills
	brokerFaults    int
	lost            int
	orderViolations int
	overlaps        int
	// duplicates are runs of a record beyond its first: what a crash or
	// a lost commit re-runs. bound is the strict bound they must stay
	// within; looseBound is the old, looser one, kept as information.
	duplicates int
	bound      int
	looseBound int
	// logDuplicates are jobs found at more than one offset: the enqueuer
	// (or kafka-go's retries inside it) wrote them twice. enqueueRetries
	// is how many jobs the enqueuer sent again after a failed enqueue.
	logDuplicates  int
	enqueueRetries int
	// failovers are, for each partition a killed broker led, the time
	// from the kill until a job enqueued after it started (ms).
	failovers []float64
	examples  []string
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
	s := fmt.Sprintf("chaos: jobs=%d kills=%d lost=%d order_violations=%d overlaps=%d duplicates=%d bound=%d loose_bound=%d log_duplicates=%d enqueue_retries=%d",
		v.jobs, v.kills, v.lost, v.orderViolations, v.overlaps, v.duplicates, v.bound, v.looseBound, v.logDuplicates, v.enqueueRetries)
	if v.brokerFaults > 0 {
		s += fmt.Sprintf(" broker_faults=%d", v.brokerFaults)
	}
	if len(v.failovers) > 0 {
		f := slices.Sorted(slices.Values(v.failovers))
		s += fmt.Sprintf(" leader_failover_ms=p50:%.0f,max:%.0f(n=%d)", f[len(f)/2], f[len(f)-1], len(f))
	}
	return s
}

// check judges the executions of jobs (key i%keys, seq i/keys for i below
// jobs) against ordo's guarantees, given the commits the workers logged.
// Definitions:
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
//   - duplicates: executions of a record (partition, offset) beyond its
//     first. A job the enqueuer wrote twice is at two offsets: its second
//     copy's runs are counted in logDuplicates instead.
//   - bound (enforced): a record can run again only when no commit covers
//     it when its partition changes hands. A commit covers an offset below
//     it, and the finished offsets its metadata lists. A worker hands a
//     partition over when it gives it up (its R line: a revocation or a
//     stop, after the final commit was tried) or dies; the next owner,
//     which may be the same worker in a later generation, starts from the
//     worker's last commit that succeeded by then. So an execution is at
//     risk when the commits of the worker that ran it, up to the
//     hand-over that followed it, do not cover it; and each fault can
//     re-run at most the executions at risk whose hand-over it caused:
//   - a worker killed: the jobs it had in flight and the jobs it
//     finished after its last commit (its hand-over is its death, or, for
//     SIGTERM, its stop);
//   - a broker restarted or killed: the executions at risk of every
//     worker that handed a partition over between the fault and the
//     group's recovery (recovered), whose final commits the fault may have
//     made fail.
//     bound sums these over the faults, each execution counted once. A
//     hand-over outside every fault must lose nothing: its final commit
//     covers all that finished, so any re-run it causes exceeds the bound.
//   - looseBound (information): every job at or above the committed offset
//     read just before a fault and started by any process before the
//     fault's rebalances settled, summed over the faults, plus the jobs
//     the enqueuer resent.
func check(jobs, keys int, execs []*execution, commits []commit, releases []release, events []event, resent int) *verdict {
	v := &verdict{jobs: jobs, enqueueRetries: resent}
	for _, e := range events {
		if e.brokerFault() {
			v.brokerFaults++
		} else {
			v.kills++
		}
	}
	died := map[string]int64{}
	for _, e := range events {
		if !e.brokerFault() {
			died[e.proc] = e.died
		}
	}
	type job struct {
		key string
		seq int
	}
	type record struct {
		partition int
		offset    int64
	}
	byJob := map[job][]*execution{}
	byKey := map[string][]*execution{}
	byRecord := map[record]int{}
	offsetsOf := map[job]map[record]bool{}
	for _, e := range execs {
		if e.end == 0 {
			e.end = died[e.proc]
			if e.end == 0 {
				e.end = math.MaxInt64 // never ended and its process never died: running at the end
			}
		}
		j, r := job{e.key, e.seq}, record{e.partition, e.offset}
		byJob[j] = append(byJob[j], e)
		byKey[e.key] = append(byKey[e.key], e)
		byRecord[r]++
		if offsetsOf[j] == nil {
			offsetsOf[j] = map[record]bool{}
		}
		offsetsOf[j][r] = true
	}
	for _, n := range byRecord {
		v.duplicates += n - 1
	}
	for _, rs := range offsetsOf {
		v.logDuplicates += len(rs) - 1
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

	covers := newCoverage(commits)
	handovers := newHandovers(releases, died)
	counted := map[*execution]bool{}
	for _, ev := range events {
		from, to := ev.at, ev.died
		if ev.brokerFault() {
			to = ev.recovered
		}
		for _, e := range execs {
			if counted[e] || (!ev.brokerFault() && e.proc != ev.proc) {
				continue
			}
			at := handovers.after(e)
			if at < from || at > to {
				continue
			}
			if !covers.at(e.proc, e.partition, e.offset, at) {
				counted[e] = true
				v.bound++
			}
		}
		all := map[[2]int64]bool{}
		for _, e := range execs {
			if c, ok := ev.committed[e.partition]; ok && e.offset < c {
				continue
			}
			if e.start <= ev.settled {
				all[[2]int64{int64(e.partition), e.offset}] = true
			}
		}
		v.looseBound += len(all)
		if len(ev.ends) > 0 {
			v.failovers = append(v.failovers, failovers(ev, execs)...)
		}
	}
	v.looseBound += resent
	return v
}

// failovers returns, for each partition the broker killed in ev led, the
// milliseconds from the kill to the first start of a job at or above the
// partition's end offset before the kill: a job enqueued after the kill,
// so written to the new leader, and fetched from it.
func failovers(ev event, execs []*execution) []float64 {
	first := map[int]int64{}
	for _, e := range execs {
		end, ok := ev.ends[e.partition]
		if !ok || ev.leaders[e.partition] != int64(ev.node) || e.offset < end || e.start < ev.at {
			continue
		}
		if f, ok := first[e.partition]; !ok || e.start < f {
			first[e.partition] = e.start
		}
	}
	var out []float64
	for _, p := range slices.Sorted(maps.Keys(first)) {
		out = append(out, float64(first[p]-ev.at)/1e6)
	}
	return out
}

// handovers answers when a worker handed over the partition of a record it
// ran: its first release of the partition from the execution's start on, or
// else its death, or else never (it ran to the end of the run).
type handovers struct {
	byWorker map[workerPartition][]int64 // release times, ascending
	died     map[string]int64
}

func newHandovers(releases []release, died map[string]int64) *handovers {
	h := &handovers{byWorker: map[workerPartition][]int64{}, died: died}
	for _, r := range releases {
		k := workerPartition{r.proc, r.partition}
		h.byWorker[k] = append(h.byWorker[k], r.at)
	}
	for _, ts := range h.byWorker {
		slices.Sort(ts)
	}
	return h
}

func (h *handovers) after(e *execution) int64 {
	ts := h.byWorker[workerPartition{e.proc, e.partition}]
	if i, _ := slices.BinarySearch(ts, e.start); i < len(ts) {
		return ts[i]
	}
	if d, ok := h.died[e.proc]; ok {
		return d
	}
	return math.MaxInt64
}

// coverage answers whether a worker's commits covered a record it ran, at a
// given time: its latest commit of the partition by then is above the
// offset or lists it as finished.
type coverage struct {
	byWorker map[workerPartition][]commit // by time
	decoded  map[*commit][]commitmeta.Run
}

type workerPartition struct {
	proc      string
	partition int
}

func newCoverage(commits []commit) *coverage {
	c := &coverage{byWorker: map[workerPartition][]commit{}, decoded: map[*commit][]commitmeta.Run{}}
	for _, cm := range commits {
		k := workerPartition{cm.proc, cm.partition}
		c.byWorker[k] = append(c.byWorker[k], cm)
	}
	for _, cs := range c.byWorker {
		slices.SortFunc(cs, func(a, b commit) int { return cmpInt64(a.at, b.at) })
	}
	return c
}

func (c *coverage) at(proc string, partition int, offset, t int64) bool {
	cs := c.byWorker[workerPartition{proc, partition}]
	i, _ := slices.BinarySearchFunc(cs, t+1, func(cm commit, t int64) int { return cmpInt64(cm.at, t) })
	if i == 0 {
		return false
	}
	last := &cs[i-1]
	if offset < last.offset {
		return true
	}
	runs, ok := c.decoded[last]
	if !ok {
		runs = commitmeta.Decode(last.offset, last.metadata)
		c.decoded[last] = runs
	}
	_, found := slices.BinarySearchFunc(runs, offset, func(r commitmeta.Run, o int64) int {
		switch {
		case r.Last < o:
			return -1
		case r.First > o:
			return 1
		}
		return 0
	})
	return found
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
