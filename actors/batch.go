package actors

import (
	"bytes"
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/kafka"
)

// BatchRule lets consecutive records of one key run together, in one call of
// Config.BatchHandler. Config.Batch returns the rule for a record; records
// for which it returns the same *BatchRule (the same pointer) may share a
// batch, so a rule per kind of work is the usual shape.
type BatchRule struct {
	// Max is the most records in one batch. Below 1 counts as 1.
	Max int
	// Wait is how long a key whose next record could run may wait for more
	// records of its own to fill the batch. The wait ends early when the
	// batch is full or a record that cannot join it arrives. 0: run what
	// is queued at once.
	Wait time.Duration
}

// BatchRecord is one record of a batch with the attempt it is on: 1 plus
// the failures charged to it (see BatchFailed).
type BatchRecord struct {
	Record  *kafka.Record
	Attempt int
}

// BatchHandler does the work of a batch: consecutive records of one key, in
// offset order, all with the same BatchRule. It says what follows with a
// BatchOutcome.
type BatchHandler func(ctx context.Context, batch []BatchRecord) BatchOutcome

// BatchOutcome tells the runtime what became of a batch. The zero value is
// BatchDone.
type BatchOutcome struct {
	failed   bool
	finished int
	next     Outcome
}

// BatchDone says every record of the batch finished.
func BatchDone() BatchOutcome { return BatchOutcome{} }

// BatchFailed says the first finished records of the batch finished, and the
// one at index finished has the outcome next: Retry charges it a failure
// (its Attempt grows) and makes its key wait; Hold (from HoldBatch) holds it;
// Done finishes it too. The records after it did not finish: they go back to
// the front of their key's queue, in order, and run again after it.
func BatchFailed(finished int, next Outcome) BatchOutcome {
	return BatchOutcome{failed: true, finished: max(finished, 0), next: next}
}

// HoldBatch is Hold for the record at index i of the batch running: pass
// the Outcome to BatchFailed(i, ...). Call it from inside the BatchHandler.
func HoldBatch(ctx context.Context, i int) (Outcome, Release) {
	k := keyActorOf(ctx)
	if k == nil || i < 0 || i >= len(k.batch) {
		panic("actors: HoldBatch called outside a batch handler, or with an index outside the batch")
	}
	return Outcome{action: actionHold}, Release{k: k, offset: k.batch[i].rec.Offset}
}

// batchDue ends a key's wait for its batch to fill.
type batchDue struct{ seq uint64 }

// ruleOf returns j's batch rule, asking Config.Batch once per record.
func (k *keyActor) ruleOf(j *job) *BatchRule {
	if !j.ruled {
		j.ruled = true
		if f := k.p.rt.cfg.Batch; f != nil {
			j.rule = f(&j.rec)
		}
	}
	return j.rule
}

// runBatch runs head with the records of its rule queued behind it, up to
// the rule's Max; a record of another rule ends the batch. When mayWait and the batch could still grow, the key
// instead waits for more, up to the rule's Wait, holding no slot.
func (k *keyActor) runBatch(ctx actor.Context, head *job, rule *BatchRule, mayWait bool) {
	limit := batchMax(rule)
	batch := append(k.batch[:0], head)
	joins := k.joiner(head, rule)
	n := 0
	for n < len(k.queued) && len(batch) < limit && joins(k.queued[n]) {
		batch = append(batch, k.queued[n])
		n++
	}
	ended := n < len(k.queued)
	clear(k.queued[:n])
	k.queued = k.queued[n:]
	if mayWait && rule.Wait > 0 && !ended && len(batch) < limit {
		k.collect(ctx, batch, rule.Wait)
		return
	}
	k.batch = batch
	if !k.p.beginBatch(batch) {
		k.batch, k.current = batch[:0], nil
		return
	}
	items := k.items[:0]
	for _, j := range batch {
		if j.attempt == 0 {
			j.attempt = 1
		}
		items = append(items, BatchRecord{Record: &j.rec, Attempt: j.attempt})
	}
	k.items = items
	hctx := k.ctx
	if head.long {
		hctx = k.longCtx
	}
	k.running.Store(head.rec.Offset + 1)
	out := k.p.rt.cfg.BatchHandler(hctx, items)
	k.running.Store(0)
	clear(items)
	if k.p.isReleased() {
		for _, j := range batch {
			k.p.end(j)
		}
		clear(batch)
		k.batch = batch[:0]
		return
	}
	k.settle(ctx, batch, out)
	clear(batch)
	k.batch = batch[:0]
}

// settle acts on a batch's outcome: what finished is reported, the record
// that failed waits (or is held) at the head of the key, and the records
// behind it go back to the front of the queue.
func (k *keyActor) settle(ctx actor.Context, batch []*job, out BatchOutcome) {
	done := len(batch)
	if out.failed {
		done = min(out.finished, len(batch))
	}
	for _, j := range batch[:done] {
		k.p.report(j, finishedRun)
	}
	if done == len(batch) {
		return
	}
	j, rest := batch[done], batch[done+1:]
	for _, r := range rest {
		k.p.report(r, attemptEnded)
	}
	k.requeue(rest)
	switch out.next.action {
	case actionDone:
		k.p.report(j, finishedRun)
	case actionRetry:
		k.p.report(j, attemptEnded)
		j.attempt++
		k.current = j
		k.wait(ctx, j, out.next.delay)
	case actionHold:
		k.p.report(j, attemptEnded)
		k.current, k.blocked = j, true
	}
}

// collect makes the key wait for its batch to fill: the records go back to
// the front of the queue, and a timer ends the wait.
func (k *keyActor) collect(ctx actor.Context, batch []*job, wait time.Duration) {
	k.requeue(batch)
	clear(batch)
	k.batch = batch[:0]
	k.blocked, k.collecting = true, true
	k.collectSeq++
	root, self, seq, p := ctx.ActorSystem().Root, k.self, k.collectSeq, k.p
	k.timer = time.AfterFunc(wait, func() {
		if !p.isRevoked() {
			root.Send(self, &batchDue{seq: seq})
		}
	})
}

// joiner tells which records may join head's batch: those of its rule and,
// when MaxVirtualPartitions folds several keys onto one key actor, of its
// own key, so that a batch never mixes keys.
func (k *keyActor) joiner(head *job, rule *BatchRule) func(*job) bool {
	if k.p.rt.reducer == nil {
		return func(j *job) bool { return k.ruleOf(j) == rule }
	}
	key := k.p.rt.virtualKey(&head.rec)
	return func(j *job) bool { return k.ruleOf(j) == rule && bytes.Equal(k.p.rt.virtualKey(&j.rec), key) }
}

// batchFull tells a collecting key whether its batch can grow no more: it
// is full, or a record that cannot join it queued behind.
func (k *keyActor) batchFull() bool {
	head := k.queued[0]
	rule := k.ruleOf(head)
	limit := batchMax(rule)
	joins := k.joiner(head, rule)
	for i, j := range k.queued {
		if i >= limit || !joins(j) {
			return true
		}
	}
	return len(k.queued) >= limit
}

// endCollect stops a key's wait and runs its batch now.
func (k *keyActor) endCollect(ctx actor.Context) {
	k.collecting, k.blocked = false, false
	if k.timer != nil {
		k.timer.Stop()
	}
	j := k.queued[0]
	k.queued[0] = nil
	k.queued = k.queued[1:]
	k.runBatch(ctx, j, k.ruleOf(j), false)
	k.goOn(ctx)
}

// requeue puts records back at the front of the key's queue, in order.
func (k *keyActor) requeue(front []*job) {
	if len(front) > 0 {
		k.queued = append(append(make([]*job, 0, len(front)+len(k.queued)), front...), k.queued...)
	}
}

func batchMax(r *BatchRule) int { return max(r.Max, 1) }
