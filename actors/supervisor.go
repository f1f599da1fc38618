package actors

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/internal/backoff"
	"github.com/ordo-go/ordo/internal/commitmeta"
	"github.com/ordo-go/ordo/kafka"
)

// job is one record on its way through the runtime: the message that carries
// it to its key actor, and the outcome reported back. The supervisor writes
// it before handing it out and then reads only what does not change (rec,
// ref, long); the key actor owns attempt.
type job struct {
	rec     kafka.Record
	ref     *keyRef
	long    bool
	attempt int
	// rule is the record's batch rule, once ruled says it was asked for.
	rule  *BatchRule
	ruled bool
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
	// countOutcomes asks the supervisor to count what its key actors
	// reported (partition.report).
	countOutcomes struct{}
	// refreshPoint publishes the commit point that publishPoint put off.
	refreshPoint struct{}
	// publishFinalState publishes the final state of a drain that ran
	// out of time, then closes done.
	publishFinalState struct{ done chan struct{} }
	// sweep passivates the keys idle for longer than IdleTimeout.
	sweep struct{}
)

// keyRef is the supervisor's handle on one key actor.
type keyRef struct {
	key     string
	pid     *actor.PID
	actor   *keyActor
	pending int // records sent and not yet finished
	// idle list links (least recently used first), and when the key last
	// became idle.
	prev, next *keyRef
	idleSince  time.Time
}

// partitionSupervisor is the actor of one assigned partition. It routes each
// fetched record to the keyActor of its virtual key (spawning it when absent),
// keeps the watermark, pauses fetching at the buffer and span bounds,
// passivates idle keys, and on revocation drains and publishes its final
// watermark.
type partitionSupervisor struct {
	rt        *Runtime
	p         *partition
	source    RecordSource
	keys      map[string]*keyRef
	slots     []*keyRef // by reducer slot, when MaxVirtualPartitions is set
	idle      idleList
	watermark *watermark
	spare     []outcome // the outcome list last counted, for reuse
	free      []*job    // finished jobs, to carry the next records
	now       time.Time // when the outcomes being counted were taken
	batchEnds []int64   // last offset of each fetched batch not yet committable

	// lastPoint is when publishPoint last listed the finished records;
	// runs is its reused list; pointDue: a refreshPoint is on its way.
	// loggedFallback: a too-large finished set was logged for this
	// partition.
	lastPoint      time.Time
	runs           []commitmeta.Run
	pointDue       bool
	loggedFallback bool

	stopFetch context.CancelFunc
	draining  bool
	sweeper   *time.Timer
}

func newPartitionSupervisor(rt *Runtime, p *partition, src RecordSource) *partitionSupervisor {
	s := &partitionSupervisor{
		rt:        rt,
		p:         p,
		source:    src,
		keys:      map[string]*keyRef{},
		watermark: newWatermark(p.start),
	}
	s.watermark.markFinished(commitmeta.Decode(p.start, p.startMeta))
	if rt.reducer != nil {
		s.slots = make([]*keyRef, rt.cfg.MaxVirtualPartitions)
	}
	return s
}

// Receive implements actor.Actor.
func (s *partitionSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *countOutcomes:
		s.countOutcomes(ctx)
	case *fetched:
		s.route(ctx, m)
	case *publishFinalState:
		s.countOutcomes(ctx)
		s.p.metadata.Store(s.finalMetadata())
		close(m.done)
	case *refreshPoint:
		s.pointDue = false
		if !s.draining {
			s.publishPoint(s.watermark.committable())
		}
	case *sweep:
		s.sweep(ctx)
	case *revoke:
		s.revoke(ctx)
	case *actor.Started:
		fctx, cancel := context.WithCancel(context.Background())
		s.stopFetch = cancel
		go s.fetch(fctx, ctx.ActorSystem().Root, ctx.Self())
		s.armSweep(ctx)
	case *actor.Stopping:
		s.stopFetch()
		if s.sweeper != nil {
			s.sweeper.Stop()
		}
	case *actor.Stopped:
		s.p.loop.stop()
	}
}

// countOutcomes takes what the key actors reported and counts it: records
// that are no longer in flight, and records that finished.
func (s *partitionSupervisor) countOutcomes(ctx actor.Context) {
	outs := s.p.takeOutcomes(s.spare)
	s.now = time.Now()
	drained := false
	finished := int64(0)
	for i, o := range outs {
		if o.what != releasedDone && s.p.end(o.j) {
			drained = true
		}
		if o.what != attemptEnded {
			s.finish(ctx, o.j)
			finished++
		}
		outs[i] = outcome{}
	}
	s.spare = outs
	s.p.outstanding.Add(-finished)
	s.publish()
	if drained {
		s.drained()
	}
}

func (s *partitionSupervisor) route(ctx actor.Context, m *fetched) {
	if s.draining || s.p.isRevoked() {
		return // fetched before revocation: never handed out
	}
	for i := range m.records {
		r := &m.records[i]
		if s.watermark.add(r.Offset) {
			// Finished by the previous owner after a record below it
			// was dropped: it must not run twice.
			s.p.outstanding.Add(-1)
			continue
		}
		ref := s.keyOf(ctx, r)
		ref.pending++
		if ref.pending == 1 && ref.idleSince != (time.Time{}) {
			s.idle.remove(ref)
			s.rt.idleKeys.Add(-1)
		}
		j := s.newJob()
		j.rec, j.ref = *r, ref
		if s.rt.cfg.LongRunning != nil {
			j.long = s.rt.cfg.LongRunning(&j.rec)
		}
		ctx.Send(ref.pid, j)
	}
	s.watermark.advance(m.next)
	if len(m.records) > 0 {
		s.batchEnds = append(s.batchEnds, m.records[len(m.records)-1].Offset)
	}
	s.publish()
	// The jobs hold copies: the fetcher may fill the batch again.
	clear(m.records)
	select {
	case s.p.batches <- m.records[:0]:
	default:
	}
}

// newJob returns a finished job to reuse, or a new one. Reusing them saves
// an allocation per record; nothing holds a job once it finished: the key
// actor reported it as its last act, and a Release names its record by
// offset.
func (s *partitionSupervisor) newJob() *job {
	if n := len(s.free); n > 0 {
		j := s.free[n-1]
		s.free = s.free[:n-1]
		return j
	}
	return new(job)
}

// keyOf returns the key actor of r's virtual key, spawning it when absent.
func (s *partitionSupervisor) keyOf(ctx actor.Context, r *kafka.Record) *keyRef {
	vk := s.rt.virtualKey(r)
	if s.slots != nil {
		slot := s.rt.reducer.Slot(vk)
		if s.slots[slot] == nil {
			s.slots[slot] = s.spawn(ctx, s.rt.reducer.names[slot])
		}
		return s.slots[slot]
	}
	if ref, ok := s.keys[string(vk)]; ok {
		return ref
	}
	ref := s.spawn(ctx, string(vk))
	s.keys[ref.key] = ref
	return ref
}

func (s *partitionSupervisor) spawn(ctx actor.Context, key string) *keyRef {
	ka := &keyActor{p: s.p, key: key}
	ref := &keyRef{key: key, actor: ka}
	ref.pid = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return ka }, s.rt.keyProps...))
	s.p.liveKeys.Add(1)
	return ref
}

// finish counts a record done: it may be committed (once published), its
// key may go idle, and (counted by the caller) it is no longer held.
func (s *partitionSupervisor) finish(ctx actor.Context, j *job) {
	s.watermark.done(j.rec.Offset)
	ref := j.ref
	ref.pending--
	if ref.pending == 0 && !s.draining {
		s.becameIdle(ctx, ref)
	}
	if len(s.free) < s.rt.cfg.MaxBuffered {
		*j = job{}
		s.free = append(s.free, j)
	}
}

// publish makes the committable offset visible to the committer and the
// fetcher, wakes a paused fetcher, and kicks the committer when the
// watermark passed the end of a fetched batch: all its records finished.
func (s *partitionSupervisor) publish() {
	c := s.watermark.committable()
	s.p.committable.Store(c)
	s.p.span.Store(s.watermark.span())
	if s.p.paused.Load() {
		select {
		case s.p.wake <- struct{}{}:
		default:
		}
	}
	passed := 0
	for passed < len(s.batchEnds) && s.batchEnds[passed] < c {
		passed++
	}
	s.publishPoint(c)
	if passed > 0 {
		s.batchEnds = s.batchEnds[passed:]
		s.rt.committer.kick()
	}
}

// becameIdle puts a key with nothing pending at the back of the idle list,
// and passivates the least recently used idle key of this partition when
// the process holds more idle keys than MaxIdleKeys.
func (s *partitionSupervisor) becameIdle(ctx actor.Context, ref *keyRef) {
	ref.idleSince = s.now
	s.idle.pushBack(ref)
	if s.rt.idleKeys.Add(1) > int64(s.rt.cfg.MaxIdleKeys) {
		s.passivate(ctx, s.idle.front())
	}
}

func (s *partitionSupervisor) passivate(ctx actor.Context, ref *keyRef) {
	s.idle.remove(ref)
	s.rt.idleKeys.Add(-1)
	if s.slots != nil {
		s.slots[s.rt.reducer.Slot([]byte(ref.key))] = nil
	} else {
		delete(s.keys, ref.key)
	}
	s.p.liveKeys.Add(-1)
	ctx.Stop(ref.pid)
}

// sweep passivates the keys idle for IdleTimeout; it runs a few times per
// IdleTimeout, so a key lives at most a quarter longer than that.
func (s *partitionSupervisor) sweep(ctx actor.Context) {
	if s.draining {
		return
	}
	cutoff := time.Now().Add(-s.rt.cfg.IdleTimeout)
	for ref := s.idle.front(); ref != nil && !ref.idleSince.After(cutoff); ref = s.idle.front() {
		s.passivate(ctx, ref)
	}
	s.armSweep(ctx)
}

func (s *partitionSupervisor) armSweep(ctx actor.Context) {
	root, self := ctx.ActorSystem().Root, ctx.Self()
	every := min(max(s.rt.cfg.IdleTimeout/4, 5*time.Millisecond), 5*time.Second)
	s.sweeper = time.AfterFunc(every, func() { root.Send(self, &sweep{}) })
}

// revoke starts the drain: the runtime has already marked the partition
// revoked, so nothing new starts. The key actors are stopped (a key in
// back-off or held stops at once; one running a record stops after it),
// and the drain ends when no record the drain waits for is in flight.
func (s *partitionSupervisor) revoke(ctx actor.Context) {
	if s.draining {
		return
	}
	s.countOutcomes(ctx) // what finished so far counts, without waiting for the pace
	s.draining = true
	s.stopFetch()
	var alive []*keyActor
	for _, ref := range s.keys {
		alive = append(alive, ref.actor)
		ctx.Stop(ref.pid)
	}
	for _, ref := range s.slots {
		if ref != nil {
			alive = append(alive, ref.actor)
			ctx.Stop(ref.pid)
		}
	}
	s.p.drainKeys.Store(&alive)
	s.rt.idleKeys.Add(-int64(s.idle.len))
	s.keys, s.slots, s.idle = nil, nil, idleList{}
	s.p.liveKeys.Store(0)
	if s.p.nothingInFlight() {
		s.drained()
	}
}

// drained publishes the final watermark, with the records finished above
// it as commit metadata, and tells the runtime the drain is over.
func (s *partitionSupervisor) drained() {
	if !s.draining {
		return // a record ended between revoke and the revoke message
	}
	select {
	case <-s.p.drained:
		return
	default:
	}
	s.publish()
	s.p.metadata.Store(s.finalMetadata())
	s.p.drainedAt.Store(time.Now().UnixNano())
	close(s.p.drained)
}

// fetch runs outside the actor: it pulls records while the partition has
// room, so fetching pauses at MaxBuffered held records, or MaxSpan offsets
// past the committable one, and resumes as the keys drain. It never fetches
// more than the room left, so both bounds hold exactly.
func (s *partitionSupervisor) fetch(ctx context.Context, root *actor.RootContext, self *actor.PID) {
	p := s.p
	cfg := &s.rt.cfg
	defer close(p.fetchDone)
	failures := 0
	next := p.start
	room := func() int {
		held := int(p.outstanding.Load())
		span := 0
		if c := p.committable.Load(); c >= 0 && next >= 0 {
			span = int(next - c)
		}
		return min(cfg.MaxBuffered-held, cfg.MaxSpan-span)
	}
	resume := func() bool {
		return room() >= max(1, min(cfg.MaxBuffered/4, cfg.MaxSpan/4))
	}
	for ctx.Err() == nil {
		max := room()
		if max <= 0 {
			p.paused.Store(true)
			for !resume() {
				select {
				case <-p.wake:
				case <-ctx.Done():
					return
				}
			}
			p.paused.Store(false)
			max = room()
		}
		var buf []kafka.Record
		select {
		case buf = <-p.batches:
		default:
		}
		records, n, err := s.source.Fetch(ctx, buf[:0], max)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrRevoked) {
				return // revoked; the drain takes it from here
			}
			failures++
			wait := backoff.Delay(50*time.Millisecond, 5*time.Second, failures)
			s.rt.cfg.Logger.Warn("ordo: fetch failed; retrying", "topic", p.topic, "partition", p.partition,
				"err", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
			continue
		}
		failures = 0
		if len(records) == 0 && n == next {
			continue
		}
		next = n
		held := p.outstanding.Add(int64(len(records)))
		for peak := p.peak.Load(); held > peak && !p.peak.CompareAndSwap(peak, held); peak = p.peak.Load() {
		}
		root.Send(self, &fetched{records: records, next: n})
	}
}

// idleList is an intrusive doubly linked list of idle keys, least recently
// used first.
type idleList struct {
	head, tail *keyRef
	len        int
}

func (l *idleList) front() *keyRef { return l.head }

func (l *idleList) pushBack(r *keyRef) {
	r.prev, r.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
	l.len++
}

func (l *idleList) remove(r *keyRef) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.prev, r.next, r.idleSince = nil, nil, time.Time{}
	l.len--
}

// publishPoint gives the committer the committable offset with the records
// finished above it, so that every commit, not only a drain's last, spares
// them a re-run after a crash. Listing them costs a scan of the span, so it
// is done at most as often as the committer commits; a call that comes
// sooner is put off until then, not dropped: the last records of a burst
// would otherwise stay out of every commit for as long as the partition
// has nothing more to count (a head record running for minutes).
func (s *partitionSupervisor) publishPoint(c int64) {
	if wait := s.rt.committer.commitSpacing() - time.Since(s.lastPoint); wait > 0 {
		if !s.pointDue {
			s.pointDue = true
			root, p := s.rt.system.Root, s.p
			time.AfterFunc(wait, func() {
				if !p.isRevoked() {
					root.Send(p.pid, &refreshPoint{})
				}
			})
		}
		return
	}
	s.lastPoint = time.Now()
	s.runs = s.watermark.finishedAbove(s.runs[:0])
	s.p.point.Store(&commitPoint{offset: c, meta: s.encodeFinished(c, s.runs)})
}

// finalMetadata is the metadata of the final commit, with the committable
// offset just published: always set, even empty, so that the final commit
// carries the watermark as it is now, never an older commit point.
func (s *partitionSupervisor) finalMetadata() *string {
	meta := s.encodeFinished(s.watermark.committable(), s.watermark.finishedAbove(nil))
	return &meta
}

// encodeFinished is commitmeta.Encode that counts, and logs once per
// partition, a finished set too large for the commit metadata.
func (s *partitionSupervisor) encodeFinished(c int64, runs []commitmeta.Run) string {
	meta, fits := commitmeta.Encode(c, runs)
	if !fits {
		s.p.fallbacks.Add(1)
		if !s.loggedFallback {
			s.loggedFallback = true
			s.rt.cfg.Logger.Warn("ordo: the records finished above the committable offset do not fit the commit metadata; committing the offset alone (a crash re-runs them)",
				"topic", s.p.topic, "partition", s.p.partition, "finished_runs", len(runs), "span", s.watermark.span())
		}
	}
	return meta
}
