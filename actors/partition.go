package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/kafka"
)

// partition is what a partition's supervisor, its key actors, its fetcher,
// the committer and the runtime share, without locks on the per-record path.
// Its state is grouped by the goroutine that writes it, so that each field
// has one writer (the exceptions are named on their group):
//   - revocation: the runtime (Revoke, Shutdown);
//   - fetchFlow: the fetch goroutine;
//   - commitHandoff: the supervisor publishes, the committer reports back;
//   - gauges: the supervisor, for Stats;
//   - drain: the supervisor, once revoked;
//   - outcomeInbox: key actors append, the supervisor takes, under a lock.
//
// The fields declared here are set by newPartition and Runtime.Assign
// before the partition is shared, and only read after.
type partition struct {
	rt         *Runtime
	topic      string
	partition  int
	generation int32
	gen        Generation
	start      int64
	startMeta  string
	hw         HighWatermarkSource
	prefetch   PrefetchSource
	pid        *actor.PID // the supervisor
	loop       *supervisorLoop

	// revocation comes first, as its fields did before the split: it
	// holds what every record touches (state, revokedCh, released), and
	// the other order tried measured slower on BenchmarkHotPath.
	revocation
	fetchFlow
	commitHandoff
	gauges
	drain
	outcomeInbox
}

// fetchFlow is the fetch goroutine's side of flow control: it fetches only
// while the partition has room under MaxBuffered and MaxSpan, pauses when
// it has none, and says so. The fetcher writes peak, paused and fetchDone;
// the supervisor is the only sender on wake and batches, which only the
// fetcher receives. Stats reads outstanding and peak; the supervisor
// reads paused to know whether to wake the fetcher.
//
// outstanding has two writers: the fetcher adds what it fetched, the
// supervisor subtracts what finished. It stays one counter because it is
// a credit both sides move: split into a fetched and a finished count,
// Stats would read two atomics in turn and, in either order, could report
// a Buffered above MaxBuffered or below zero.
type fetchFlow struct {
	outstanding atomic.Int64 // held: fetched, not finished
	peak        atomic.Int64
	paused      atomic.Bool
	// wake tells a paused fetcher that room was made.
	wake chan struct{}
	// batches returns routed batches to the fetcher, to fill again.
	batches   chan []kafka.Record
	fetchDone chan struct{} // closed when the fetch goroutine has returned
}

// commitHandoff is what the supervisor hands the committer, and what the
// committer reports back. The supervisor writes committable, point and
// metadata; the committer reads them, and writes committed and
// committedMeta, which Stats and the release log read. The fetcher reads
// committable too, for its MaxSpan bound.
type commitHandoff struct {
	committable atomic.Int64
	// point is a recent committable offset with the records finished above
	// it, for the committer's periodic and batch commits. It is refreshed
	// at most once per commit spacing, so it may lag the committable
	// offset; the final commit never uses it.
	point atomic.Pointer[commitPoint]
	// metadata is the drain's final metadata, set once the drain is over:
	// the records finished above the final committable offset. It stays
	// set: every commit of a drained partition carries it, the final one
	// too when a round that listed the partition before its revocation
	// committed it first.
	metadata atomic.Pointer[string]

	committed     atomic.Int64
	committedMeta atomic.Pointer[string] // the metadata committed with it
}

// gauges are what the supervisor counts for Stats alone.
type gauges struct {
	span     atomic.Int64 // fetch position minus committable
	liveKeys atomic.Int64
	// fallbacks counts the commits whose finished set did not fit Kafka's
	// metadata limit and went without it.
	fallbacks atomic.Int64
}

// revocation is written by the runtime: Revoke and Shutdown mark the
// partition revoked (revoke), cancel longCtx a grace period later, and
// set released once the final commit is over. Key actors read it to
// decide whether a record may start.
//
// state has more writers than the runtime: a key actor counts each record
// it starts into it (begin) and the supervisor counts it out (end; a key
// actor does, for a record that ends after the release). It must stay one
// word, shared by all of them: the revoked bit and the count of records in
// flight live together so that begin sees a revocation and counts a
// record in one atomic step.
type revocation struct {
	// state packs the revocation flag with the count of records in flight:
	// those a drain waits for, and the long-running ones it does not.
	state            atomic.Int64
	revokeOnce       sync.Once
	revokedCh        chan struct{}
	inflightAtRevoke atomic.Int64
	released         atomic.Bool // the drain and final commit are over

	// longCtx is the parent of long-running records' contexts: cancelled
	// a grace period after revocation, since the drain does not wait for
	// them.
	longCtx    context.Context
	longCancel context.CancelFunc
}

// drain is written by the supervisor as it drains a revoked partition; the
// runtime reads it to wait for the drain, time it and, when a shutdown
// runs out of time, name the records still running.
type drain struct {
	// drainKeys are the key actors alive when the drain began.
	drainKeys atomic.Pointer[[]*keyActor]
	drained   chan struct{} // closed when a revoked partition has nothing in flight
	drainedAt atomic.Int64  // unix nanoseconds
}

// outcomeInbox holds what key actors report of their records, waiting for
// the supervisor to count them (see supervisorLoop). It has many writers by
// design, every key actor of the partition, so a mutex guards it.
type outcomeInbox struct {
	outcomeMu sync.Mutex
	outcomes  []outcome
}

func newPartition(rt *Runtime, a Assignment) *partition {
	p := &partition{
		rt:         rt,
		topic:      a.Topic,
		partition:  a.Partition,
		generation: a.Generation.GenerationID(),
		gen:        a.Generation,
		start:      a.Start,
		startMeta:  a.StartMetadata,
		fetchFlow: fetchFlow{
			wake:      make(chan struct{}, 1),
			batches:   make(chan []kafka.Record, 2),
			fetchDone: make(chan struct{}),
		},
		revocation: revocation{revokedCh: make(chan struct{})},
		drain:      drain{drained: make(chan struct{})},
	}
	p.committable.Store(a.Start)
	p.committed.Store(a.Start)
	p.hw, _ = a.Source.(HighWatermarkSource)
	p.prefetch, _ = a.Source.(PrefetchSource)
	p.longCtx, p.longCancel = context.WithCancel(rt.ctx)
	return p
}

const (
	revokedBit    = 1 << 62
	inFlightMask  = 1<<31 - 1 // records a drain waits for
	longInFlight1 = 1 << 31   // one long-running record in flight
)

func inFlightDelta(j *job) int64 {
	if j.long {
		return longInFlight1
	}
	return 1
}

// begin marks a record as started unless the partition was revoked. Together
// with revoke it makes "no buffered record starts after revocation began"
// hold by construction.
func (r *revocation) begin(j *job) bool { return r.beginDelta(inFlightDelta(j)) }

// beginBatch is begin for every record of a batch, in one atomic step.
func (r *revocation) beginBatch(batch []*job) bool {
	delta := int64(0)
	for _, j := range batch {
		delta += inFlightDelta(j)
	}
	return r.beginDelta(delta)
}

func (r *revocation) beginDelta(delta int64) bool {
	for {
		s := r.state.Load()
		if s&revokedBit != 0 {
			return false
		}
		if r.state.CompareAndSwap(s, s+delta) {
			return true
		}
	}
}

// end undoes begin once the supervisor has counted the record's outcome,
// and tells whether that was the last record a revocation waited for.
func (r *revocation) end(j *job) (drained bool) {
	s := r.state.Add(-inFlightDelta(j))
	return s&revokedBit != 0 && s&inFlightMask == 0
}

func (r *revocation) revoke() {
	r.revokeOnce.Do(func() {
		before := r.state.Or(revokedBit)
		r.inflightAtRevoke.Store(before & inFlightMask)
		close(r.revokedCh)
	})
}

// longInFlight counts the long-running records whose handler runs.
func (r *revocation) longInFlight() int { return int((r.state.Load() &^ revokedBit) >> 31) }

// inFlight counts the records whose handler runs, long-running ones too.
func (r *revocation) inFlight() int {
	s := r.state.Load()
	return int(s&inFlightMask + (s&^revokedBit)>>31)
}

func (r *revocation) isRevoked() bool {
	select {
	case <-r.revokedCh:
		return true
	default:
		return false
	}
}

// nothingInFlight tells a revoked partition's supervisor whether it may
// finish the drain now.
func (r *revocation) nothingInFlight() bool { return r.state.Load()&inFlightMask == 0 }

func (r *revocation) isReleased() bool { return r.released.Load() }

// outcome is what became of one attempt of a record.
type outcome struct {
	j    *job
	what outcomeKind
}

type outcomeKind uint8

const (
	// finishedRun: the handler returned Done.
	finishedRun outcomeKind = iota
	// attemptEnded: the handler returned, and the record waits at its key
	// (a retry or a hold): no longer in flight, not finished.
	attemptEnded
	// releasedDone: a held record was released, finished; its handler had
	// returned already.
	releasedDone
)

// report hands the supervisor an outcome, kicking its loop when the list
// was empty.
func (p *partition) report(j *job, what outcomeKind) {
	p.outcomeMu.Lock()
	first := len(p.outcomes) == 0
	p.outcomes = append(p.outcomes, outcome{j, what})
	p.outcomeMu.Unlock()
	if first {
		p.loop.outcomeKick()
	}
}

// countIsUrgent tells the supervisor loop not to wait for its pace: a drain
// waits for the records in flight, or the fetcher waits for room that the
// outcomes not yet counted would make.
func (p *partition) countIsUrgent() bool {
	if p.isRevoked() {
		return true
	}
	if !p.paused.Load() {
		return false
	}
	p.outcomeMu.Lock()
	uncounted := len(p.outcomes)
	p.outcomeMu.Unlock()
	return uncounted >= max(1, p.rt.cfg.MaxBuffered/4)
}

// takeOutcomes swaps the reported outcomes for spare, an emptied slice to
// reuse.
func (p *partition) takeOutcomes(spare []outcome) []outcome {
	p.outcomeMu.Lock()
	out := p.outcomes
	p.outcomes = spare[:0]
	p.outcomeMu.Unlock()
	return out
}

func (p *partition) highWatermark() int64 {
	if p.hw == nil {
		return -1
	}
	return p.hw.HighWatermark()
}

func (p *partition) prefetched() int {
	if p.prefetch == nil {
		return 0
	}
	return p.prefetch.Prefetched()
}

func (d *drain) drainTook(began time.Time) time.Duration {
	at := d.drainedAt.Load()
	if at == 0 {
		return time.Since(began).Round(time.Millisecond)
	}
	return time.Unix(0, at).Sub(began).Round(time.Millisecond)
}

// commitPoint is an offset to commit with its metadata: the offsets above it
// that finished.
type commitPoint struct {
	offset int64
	meta   string
}
