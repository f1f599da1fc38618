package status

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// Tally counts what a server's jobs did, by kind, and keeps its most recent
// errors, for its reports. Its kinds are fixed when it is built, so counting
// a run is a map read and an atomic add. A nil Tally counts nothing.
type Tally struct {
	byKind map[string]*kindTally

	mu     sync.Mutex
	errors [MaxErrors]JobError
	next   int // where the next error goes in errors
	count  int // errors held, up to len(errors)
}

// kindTally counts one kind's jobs. Successful runs, the hot path, are
// counted in stripes picked by offset, each on its own cache line, so that
// the pool's goroutines seldom add to the same one.
type kindTally struct {
	processed                     [tallyStripes]paddedCount
	failed, retried, deadLettered atomic.Int64
}

const tallyStripes = 8

type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

func (k *kindTally) processedTotal() int64 {
	var n int64
	for i := range k.processed {
		n += k.processed[i].n.Load()
	}
	return n
}

// unknownKind counts the jobs of kinds without a worker, so that bad input
// cannot grow a report without bound.
const unknownKind = "unknown"

// NewTally counts the jobs of kinds, and those of any other kind as
// "unknown".
func NewTally(kinds []string) *Tally {
	t := &Tally{byKind: make(map[string]*kindTally, len(kinds)+1)}
	for _, kind := range kinds {
		t.byKind[kind] = &kindTally{}
	}
	t.byKind[unknownKind] = &kindTally{}
	return t
}

func (t *Tally) of(kind string) *kindTally {
	if k := t.byKind[kind]; k != nil {
		return k
	}
	return t.byKind[unknownKind]
}

// Ran counts one run of r, a job of kind, that returned err.
func (t *Tally) Ran(r *kafka.Record, kind string, err error) {
	if t == nil {
		return
	}
	if err == nil {
		t.of(kind).processed[r.Offset&(tallyStripes-1)].n.Add(1)
	} else {
		t.of(kind).failed.Add(1)
	}
}

// Retried counts a failed run of kind that will run again.
func (t *Tally) Retried(kind string) {
	if t != nil {
		t.of(kind).retried.Add(1)
	}
}

// DeadLettered counts a dead letter of kind the broker acknowledged.
func (t *Tally) DeadLettered(kind string) {
	if t != nil {
		t.of(kind).deadLettered.Add(1)
	}
}

// Failure keeps the error of one failed run (or of a record that could not
// run), never the job's args.
func (t *Tally) Failure(r *kafka.Record, kind, jobID string, attempt int, msg string, deadLettered bool) {
	if t == nil {
		return
	}
	e := JobError{
		At: time.Now().UTC(), Kind: kind, JobID: jobID, Key: string(r.Key[:min(len(r.Key), 200)]),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Attempt: attempt,
		Message: TruncateMessage(msg), DeadLettered: deadLettered,
	}
	t.mu.Lock()
	t.errors[t.next] = e
	t.next = (t.next + 1) % len(t.errors)
	t.count = min(t.count+1, len(t.errors))
	t.mu.Unlock()
}

// recentErrors returns the errors held, newest first.
func (t *Tally) recentErrors() []JobError {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]JobError, 0, t.count)
	for i := 1; i <= t.count; i++ {
		out = append(out, t.errors[(t.next-i+len(t.errors))%len(t.errors)])
	}
	return out
}
