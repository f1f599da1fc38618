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
type partition struct {
	rt         *Runtime
	topic      string
	partition  int
	generation int32
	gen        Generation
	start      int64
	startMeta  string
	pid        *actor.PID // the supervisor
	loop       *supervisorLoop

	// state packs the revocation flag with the count of records in flight:
	// those a drain waits for, and the long-running ones it does not, so
	// that begin sees a revocation and counts a record in one atomic step.
	state      atomic.Int64
	revokeOnce sync.Once
	revokedCh  chan struct{}
	// drainKeys are the key actors alive when the drain began, to name
	// the records still running if a shutdown runs out of time.
	drainKeys atomic.Pointer[[]*keyActor]

	outstanding   atomic.Int64 // held: fetched, not finished
	peak          atomic.Int64
	span          atomic.Int64 // fetch position minus committable
	liveKeys      atomic.Int64
	committable   atomic.Int64           // published by the supervisor
	committed     atomic.Int64           // set by the committer
	committedMeta atomic.Pointer[string] // the metadata committed with it
	// metadata is the drain's final metadata, set once the drain is over:
	// the records finished above the final committable offset.
	metadata atomic.Pointer[string]
	// point is a recent committable offset with the records finished above
	// it, for the committer's periodic and batch commits. It is refreshed
	// at most once per commit spacing, so it may lag the committable
	// offset; the final commit never uses it.
	point atomic.Pointer[commitPoint]
	// fallbacks counts the commits whose finished set did not fit Kafka's
	// metadata limit and went without it.
	fallbacks        atomic.Int64
	released         atomic.Bool // the drain and final commit are over
	inflightAtRevoke atomic.Int64
	drainedAt        atomic.Int64 // unix nanoseconds
	hw               HighWatermarkSource
	prefetch         PrefetchSource

	// outcomes are what key actors report of their records, waiting for
	// the supervisor to count them (see supervisorLoop).
	outcomeMu sync.Mutex
	outcomes  []outcome

	// batches returns routed batches to the fetcher, to fill again.
	batches chan []kafka.Record

	// wake tells a paused fetcher that room was made.
	wake      chan struct{}
	paused    atomic.Bool
	drained   chan struct{} // closed when a revoked partition has nothing in flight
	fetchDone chan struct{} // closed when the fetch goroutine has returned

	// longCtx is the parent of long-running records' contexts: cancelled
	// a grace period after revocation, since the drain does not wait for
	// them.
	longCtx    context.Context
	longCancel context.CancelFunc
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
		revokedCh:  make(chan struct{}),
		wake:       make(chan struct{}, 1),
		batches:    make(chan []kafka.Record, 2),
		drained:    make(chan struct{}),
		fetchDone:  make(chan struct{}),
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
func (p *partition) begin(j *job) bool { return p.beginDelta(inFlightDelta(j)) }

// beginBatch is begin for every record of a batch, in one atomic step.
func (p *partition) beginBatch(batch []*job) bool {
	delta := int64(0)
	for _, j := range batch {
		delta += inFlightDelta(j)
	}
	return p.beginDelta(delta)
}

func (p *partition) beginDelta(delta int64) bool {
	for {
		s := p.state.Load()
		if s&revokedBit != 0 {
			return false
		}
		if p.state.CompareAndSwap(s, s+delta) {
			return true
		}
	}
}

// end undoes begin once the supervisor has counted the record's outcome,
// and tells whether that was the last record a revocation waited for.
func (p *partition) end(j *job) (drained bool) {
	s := p.state.Add(-inFlightDelta(j))
	return s&revokedBit != 0 && s&inFlightMask == 0
}

func (p *partition) revoke() {
	p.revokeOnce.Do(func() {
		before := p.state.Or(revokedBit)
		p.inflightAtRevoke.Store(before & inFlightMask)
		close(p.revokedCh)
	})
}

// longInFlight counts the long-running records whose handler runs.
func (p *partition) longInFlight() int { return int((p.state.Load() &^ revokedBit) >> 31) }

// inFlight counts the records whose handler runs, long-running ones too.
func (p *partition) inFlight() int {
	s := p.state.Load()
	return int(s&inFlightMask + (s&^revokedBit)>>31)
}

func (p *partition) isRevoked() bool {
	select {
	case <-p.revokedCh:
		return true
	default:
		return false
	}
}

// nothingInFlight tells a revoked partition's supervisor whether it may
// finish the drain now.
func (p *partition) nothingInFlight() bool { return p.state.Load()&inFlightMask == 0 }

func (p *partition) isReleased() bool { return p.released.Load() }

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

func (p *partition) drainTook(began time.Time) time.Duration {
	at := p.drainedAt.Load()
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
