package actors

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// keyActor runs the records of one virtual-partition key, one at a time, in
// the order its supervisor sent them (offset order). Its mailbox turns run on
// the runtime's handler pool, so it holds a goroutine, and so a concurrency
// slot, only while it handles a message. Receive never waits except to run
// the handler: a retry is a timer that sends the actor a message, and a held
// record waits for a message too. Meanwhile the records that arrive queue in
// the actor, in order.
type keyActor struct {
	p    *partition
	key  string
	self *actor.PID

	// ctx and longCtx are built once per actor so that running a record
	// allocates no context.
	ctx, longCtx context.Context
	state        KeyState

	// current is the record running, or waiting for its retry or release
	// (then blocked is set). queued holds the records that arrived behind
	// a waiting one, oldest first.
	current *job
	blocked bool
	queued  []*job
	timer   *time.Timer
	// batch is the batch running (see runBatch), items its records as
	// the handler gets them; both are reused. collecting: the key waits
	// for its batch to fill (blocked is set, current is nil, and the
	// batch is the head of queued); collectSeq tells a stale batchDue.
	batch      []*job
	items      []BatchRecord
	collecting bool
	collectSeq uint64
	// running is the offset of the record whose handler runs, plus one;
	// zero when none runs. Read by a shutdown that ran out of time.
	running atomic.Int64
}

// Receive implements actor.Actor.
func (k *keyActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *job:
		if k.blocked || len(k.queued) > 0 {
			k.queued = append(k.queued, m)
			if k.collecting && k.batchFull() {
				k.endCollect(ctx)
			}
			return
		}
		if k.p.rt.cfg.Batch != nil && k.ruleOf(m) != nil {
			// The records of this key already in the mailbox queue
			// behind m before runQueued comes back, so they can
			// join its batch.
			k.queued = append(k.queued, m)
			ctx.Send(k.self, &runQueued{})
			return
		}
		k.run(ctx, m, true)
		k.goOn(ctx)
	case *retryDue:
		if k.waitingFor(m.offset) {
			k.blocked = false
			k.run(ctx, k.current, false)
			k.goOn(ctx)
		}
	case *batchDue:
		if k.collecting && m.seq == k.collectSeq {
			k.endCollect(ctx)
		}
	case *released:
		if k.waitingFor(m.offset) {
			j := k.current
			k.blocked, k.current = false, nil
			k.p.report(j, releasedDone)
			k.goOn(ctx)
		}
	case *runQueued:
		if !k.blocked && len(k.queued) > 0 {
			j := k.queued[0]
			k.queued[0] = nil
			k.queued = k.queued[1:]
			k.run(ctx, j, true)
			k.goOn(ctx)
		}
	case *actor.Started:
		if k.ctx == nil {
			k.self = ctx.Self()
			k.ctx = context.WithValue(k.p.rt.ctx, keyActorKey{}, k)
			k.longCtx = context.WithValue(k.p.longCtx, keyActorKey{}, k)
		}
	case *actor.Restarting:
		// The handler panicked and the supervision strategy restarts the
		// actor (the same instance, so the queue survives): the record
		// runs again after a back-off, as a failed attempt would.
		if len(k.batch) > 0 {
			// A batch handler panicked: the batch's first record is
			// charged, and the others queue behind it again.
			b := k.batch
			k.settle(ctx, b, BatchFailed(0, Retry(k.p.rt.cfg.RestartBackoff(b[0].attempt))))
			clear(b)
			k.batch = b[:0]
			return
		}
		if j := k.current; j != nil && !k.blocked {
			k.p.report(j, attemptEnded)
			k.wait(ctx, j, k.p.rt.cfg.RestartBackoff(j.attempt))
		}
	case *actor.Stopping:
		// Revoked or passivated: what waits here is dropped, neither run
		// nor committed.
		if k.timer != nil {
			k.timer.Stop()
		}
		k.current, k.queued, k.blocked, k.collecting = nil, nil, false, false
	}
}

func (k *keyActor) waitingFor(offset int64) bool {
	return k.blocked && k.current != nil && k.current.rec.Offset == offset
}

// run runs one attempt of j, unless the partition was revoked (then j is
// dropped: neither run nor committed), and acts on the handler's outcome.
// A record with a batch rule runs in a batch (mayWait: its key may wait for
// the batch to fill).
func (k *keyActor) run(ctx actor.Context, j *job, mayWait bool) {
	if k.p.rt.cfg.Batch != nil {
		if rule := k.ruleOf(j); rule != nil {
			k.current = nil
			k.runBatch(ctx, j, rule, mayWait)
			return
		}
	}
	if !k.p.begin(j) {
		k.current = nil
		return
	}
	k.current = j
	j.attempt++
	hctx := k.ctx
	if j.long {
		hctx = k.longCtx
	}
	k.running.Store(j.rec.Offset + 1)
	out := k.p.rt.cfg.Handler(hctx, &j.rec, j.attempt)
	k.running.Store(0)
	if k.p.isReleased() {
		// A long-running record outlived its partition's drain: nobody
		// counts its outcome any more, so it leaves the count itself.
		k.current = nil
		k.p.end(j)
		return
	}
	switch out.action {
	case actionDone:
		k.current = nil
		k.p.report(j, finishedRun)
	case actionRetry:
		k.p.report(j, attemptEnded)
		k.wait(ctx, j, out.delay)
	case actionHold:
		k.p.report(j, attemptEnded)
		k.blocked = true
	}
}

// wait blocks the key until a timer sends the retry of j.
func (k *keyActor) wait(ctx actor.Context, j *job, d time.Duration) {
	k.blocked = true
	root, self, offset, p := ctx.ActorSystem().Root, k.self, j.rec.Offset, k.p
	k.timer = time.AfterFunc(d, func() {
		if !p.isRevoked() {
			root.Send(self, &retryDue{offset: offset})
		}
	})
}

// goOn runs what queued behind a record that waited, one record per message,
// so that a stop or another key's turn can come in between.
func (k *keyActor) goOn(ctx actor.Context) {
	if !k.blocked && len(k.queued) > 0 {
		ctx.Send(k.self, &runQueued{})
	}
}
