package actors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/kafka"
)

// partitionState is what a partition's supervisor, its key actors, its
// fetcher and the committer share. The mutex guards only the revocation flag
// and the in-flight set; it is per partition, never global.
type partitionState struct {
	topic      string
	partition  int
	generation int32
	maxBuf     int64

	mu        sync.Mutex
	revoked   bool
	revokedCh chan struct{}
	inflight  map[int64]string // offset → virtual key of records running

	outstanding atomic.Int64 // fetched, not finished
	liveKeys    atomic.Int64 // key actors alive
	peak        atomic.Int64
	committable atomic.Int64        // published by the supervisor
	committed   atomic.Int64        // set by the committer
	hw          HighWatermarkSource // nil when the source does not know
	wake        chan struct{}
	drained     chan struct{}
	fetchDone   chan struct{} // closed when the fetch goroutine has returned
	// metadata is the commit metadata to send with the committable offset:
	// set when the drain ends, naming the records above it that finished.
	metadata atomic.Pointer[string]
	// skip holds offsets an earlier owner finished above Start (from its
	// commit metadata): they count as finished without running again.
	skip map[int64]struct{}

	// longCtx is the parent of long-running records' contexts: cancelled
	// a grace period after revocation, since the drain does not wait for
	// them.
	longCtx    context.Context
	longCancel context.CancelFunc
}

func newPartitionState(rt *Runtime, a Assignment, generation int32, maxBuf int) *partitionState {
	p := &partitionState{
		topic:      a.Topic,
		partition:  a.Partition,
		generation: generation,
		maxBuf:     int64(maxBuf),
		revokedCh:  make(chan struct{}),
		inflight:   map[int64]string{},
		wake:       make(chan struct{}, 1),
		drained:    make(chan struct{}),
		fetchDone:  make(chan struct{}),
	}
	p.committable.Store(a.Start)
	p.committed.Store(a.Start)
	if finished := DecodeFinished(a.Start, a.StartMetadata); len(finished) > 0 {
		p.skip = make(map[int64]struct{}, len(finished))
		for _, o := range finished {
			p.skip[o] = struct{}{}
		}
	}
	p.hw, _ = a.Source.(HighWatermarkSource)
	p.longCtx, p.longCancel = context.WithCancel(rt.ctx)
	return p
}

// begin marks a record as started unless the partition was revoked. Together
// with revoke it makes "no buffered record starts after revocation began"
// hold by construction.
func (p *partitionState) begin(offset int64, key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked {
		return false
	}
	p.inflight[offset] = key
	return true
}

func (p *partitionState) highWatermark() int64 {
	if p.hw == nil {
		return -1
	}
	return p.hw.HighWatermark()
}

func (p *partitionState) end(offset int64) {
	p.mu.Lock()
	delete(p.inflight, offset)
	p.mu.Unlock()
}

func (p *partitionState) isRevoked() bool {
	select {
	case <-p.revokedCh:
		return true
	default:
		return false
	}
}

func (p *partitionState) revoke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.revoked {
		p.revoked = true
		close(p.revokedCh)
	}
}

// resumeAt is where a paused partition starts fetching again: a quarter of
// the buffer free, so that fetches are not one record at a time.
func (p *partitionState) resumeAt() int64 {
	return p.maxBuf - max(1, p.maxBuf/4)
}

// Messages of the supervisor protocol.
type (
	// fetched is a batch from the fetcher; next is the fetch position after it.
	fetched struct {
		records []kafka.Record
		next    int64
	}
	// revoke starts the drain.
	revoke struct{}
	// run hands a record to its key actor.
	run struct {
		record *kafka.Record
		seq    uint64
	}
	// finished reports a record done (run to success, or given up).
	finished struct {
		key string
		seq uint64
	}
	// idle asks the supervisor to passivate a key actor.
	idle struct{ key string }
	// keyStopped is a key actor's last message: it acks the poison pill.
	keyStopped struct{ key string }
)

type keyRef struct {
	pid     *actor.PID
	actor   *KeyActor
	pending int // records sent and not yet reported finished
}

// PartitionSupervisor is the actor of one assigned partition. It routes each
// fetched record to the KeyActor of its virtual key (spawning it when absent),
// keeps the Watermark, pauses fetching at the buffer bound, passivates idle
// keys, and on revocation drains its children and publishes its final
// watermark.
type PartitionSupervisor struct {
	rt        *Runtime
	p         *partitionState
	source    RecordSource
	kick      func()
	keys      map[string]*keyRef
	watermark *Watermark
	batchEnds []uint64 // last sequence number of each batch not yet passed

	stopFetch context.CancelFunc
	draining  bool
	awaiting  int
}

func newPartitionSupervisor(rt *Runtime, p *partitionState, src RecordSource, kick func()) *PartitionSupervisor {
	return &PartitionSupervisor{
		rt:        rt,
		p:         p,
		source:    src,
		kick:      kick,
		keys:      map[string]*keyRef{},
		watermark: NewWatermark(p.committable.Load()),
	}
}

// Receive implements actor.Actor.
func (s *PartitionSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		fctx, cancel := context.WithCancel(context.Background())
		s.stopFetch = cancel
		go s.fetch(fctx, ctx.ActorSystem().Root, ctx.Self())
	case *fetched:
		s.route(ctx, m)
	case *finished:
		s.finish(m)
	case *idle:
		if k, ok := s.keys[m.key]; ok && k.pending == 0 && !s.draining {
			delete(s.keys, m.key)
			s.p.liveKeys.Add(-1)
			ctx.Stop(k.pid)
		}
	case *revoke:
		s.revoke(ctx)
	case *keyStopped:
		if s.draining {
			s.awaiting--
			s.maybeDrained()
		}
	case *actor.Stopping:
		if s.stopFetch != nil {
			s.stopFetch()
		}
	}
}

func (s *PartitionSupervisor) route(ctx actor.Context, m *fetched) {
	if s.draining || s.p.isRevoked() {
		return // fetched before revocation: never handed out
	}
	for i := range m.records {
		r := &m.records[i]
		seq := s.watermark.Add(r.Offset)
		if _, done := s.p.skip[r.Offset]; done {
			// Finished by the previous owner after a record below it
			// was dropped: it must not run twice.
			delete(s.p.skip, r.Offset)
			s.watermark.Done(seq)
			s.p.outstanding.Add(-1)
			continue
		}
		key := s.rt.virtualKey(r)
		k, ok := s.keys[key]
		if !ok {
			ka := &KeyActor{rt: s.rt, p: s.p, key: key}
			k = &keyRef{actor: ka, pid: ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return ka }))}
			s.keys[key] = k
			s.p.liveKeys.Add(1)
		}
		k.pending++
		ctx.Send(k.pid, &run{record: r, seq: seq})
	}
	s.watermark.Advance(m.next)
	if len(m.records) > 0 {
		s.batchEnds = append(s.batchEnds, s.watermark.base+uint64(len(s.watermark.entries))-1)
	} else {
		s.publish()
	}
}

func (s *PartitionSupervisor) finish(m *finished) {
	s.watermark.Done(m.seq)
	if k, ok := s.keys[m.key]; ok {
		k.pending--
	}
	if n := s.p.outstanding.Add(-1); n <= s.p.resumeAt() {
		select {
		case s.p.wake <- struct{}{}:
		default:
		}
	}
	s.publish()
}

// publish makes the committable offset visible to the committer and kicks
// it when the watermark passed the end of a fetched batch: all children
// acked that batch.
func (s *PartitionSupervisor) publish() {
	s.p.committable.Store(s.watermark.Committable())
	passed := 0
	firstPending := s.watermark.base + uint64(s.watermark.head)
	for passed < len(s.batchEnds) && s.batchEnds[passed] < firstPending {
		passed++
	}
	if passed > 0 {
		s.batchEnds = s.batchEnds[passed:]
		s.kick()
	}
}

func (s *PartitionSupervisor) revoke(ctx actor.Context) {
	if s.draining {
		return
	}
	s.draining = true
	s.p.revoke()
	s.stopFetch()
	for _, k := range s.keys {
		ctx.Poison(k.pid)
		if k.actor.runningLong.Load() {
			// Long-running mode: the drain does not wait for this
			// record; its context ends after the grace period (see
			// Runtime.Run) and the watermark stays below it, so it
			// is not committed.
			continue
		}
		s.awaiting++
	}
	s.keys = map[string]*keyRef{}
	s.p.liveKeys.Store(0)
	s.maybeDrained()
}

func (s *PartitionSupervisor) maybeDrained() {
	if s.awaiting == 0 {
		s.publish()
		if finished := s.watermark.FinishedAbove(); len(finished) > 0 {
			meta := EncodeFinished(s.watermark.Committable(), finished)
			s.p.metadata.Store(&meta)
		}
		close(s.p.drained)
	}
}

// fetch runs outside the actor: it pulls records while the partition has
// room in its buffer, so fetching pauses at MaxBuffered and resumes as the
// keys drain. It never fetches more than the room left, so the bound holds
// exactly.
func (s *PartitionSupervisor) fetch(ctx context.Context, root *actor.RootContext, self *actor.PID) {
	p := s.p
	defer close(p.fetchDone)
	backoff := 50 * time.Millisecond
	prevNext := p.committable.Load()
	for ctx.Err() == nil {
		if out := p.outstanding.Load(); out >= p.maxBuf {
			for p.outstanding.Load() > p.resumeAt() {
				select {
				case <-p.wake:
				case <-ctx.Done():
					return
				}
			}
		}
		room := p.maxBuf - p.outstanding.Load()
		records, next, err := s.source.Fetch(ctx, int(room))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrRevoked) {
				return // the generation ended; the drain takes it from here
			}
			s.rt.cfg.Logger.Warn("ordo: fetch failed; retrying", "topic", p.topic, "partition", p.partition,
				"err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(records) == 0 && next == prevNext {
			continue
		}
		prevNext = next
		n := p.outstanding.Add(int64(len(records)))
		for {
			peak := p.peak.Load()
			if n <= peak || p.peak.CompareAndSwap(peak, n) {
				break
			}
		}
		root.Send(self, &fetched{records: records, next: next})
	}
}
