package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// partition is what a partition's supervisor, its key actors, its fetcher,
// the committer and the runtime share. The mutex guards the revocation flag
// and the records running; it is per partition, never global.
type partition struct {
	rt         *Runtime
	topic      string
	partition  int
	generation int32
	gen        Generation
	start      int64
	startMeta  string
	pid        *actor.PID // the supervisor

	mu        sync.Mutex
	revoked   bool
	revokedCh chan struct{}
	running   map[int64]string // offset → virtual key of records whose handler runs
	inflight  int              // of running, those a drain waits for (not long-running)

	outstanding      atomic.Int64 // held: fetched, not finished
	peak             atomic.Int64
	span             atomic.Int64 // fetch position minus committable
	liveKeys         atomic.Int64
	committable      atomic.Int64 // published by the supervisor
	committed        atomic.Int64 // set by the committer
	metadata         atomic.Pointer[string]
	released         atomic.Bool // the drain and final commit are over
	inflightAtRevoke atomic.Int64
	drainedAt        atomic.Int64 // unix nanoseconds
	hw               HighWatermarkSource

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
		running:    map[int64]string{},
		wake:       make(chan struct{}, 1),
		drained:    make(chan struct{}),
		fetchDone:  make(chan struct{}),
	}
	p.committable.Store(a.Start)
	p.committed.Store(a.Start)
	p.hw, _ = a.Source.(HighWatermarkSource)
	p.longCtx, p.longCancel = context.WithCancel(rt.ctx)
	return p
}

// begin marks a record as started unless the partition was revoked. Together
// with revoke it makes "no buffered record starts after revocation began"
// hold by construction.
func (p *partition) begin(j *job, key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked {
		return false
	}
	p.running[j.rec.Offset] = key
	if !j.long {
		p.inflight++
	}
	return true
}

// end undoes begin once the supervisor has counted the record's outcome,
// and tells whether that was the last record a revocation waited for.
func (p *partition) end(j *job) (drained bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, j.rec.Offset)
	if !j.long {
		p.inflight--
	}
	return p.revoked && p.inflight == 0
}

func (p *partition) revoke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.revoked {
		p.revoked = true
		p.inflightAtRevoke.Store(int64(p.inflight))
		close(p.revokedCh)
	}
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
func (p *partition) nothingInFlight() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight == 0
}

func (p *partition) isReleased() bool { return p.released.Load() }

func (p *partition) highWatermark() int64 {
	if p.hw == nil {
		return -1
	}
	return p.hw.HighWatermark()
}

func (p *partition) drainTook(began time.Time) time.Duration {
	at := p.drainedAt.Load()
	if at == 0 {
		return time.Since(began).Round(time.Millisecond)
	}
	return time.Unix(0, at).Sub(began).Round(time.Millisecond)
}
