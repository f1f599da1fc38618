package executor

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
)

// BatchRule returns the runtime's Config.Batch: a job of a batch worker's
// kind runs in a batch, any other record alone. Nil when no kind is worked
// in batches, so that the runtime never asks.
func (e *Executor) BatchRule() func(*kafka.Record) *actors.BatchRule {
	for _, w := range e.cfg.Workers.byKind {
		if _, ok := w.(BatchWorker); ok {
			return e.batchRule
		}
	}
	return nil
}

func (e *Executor) batchRule(r *kafka.Record) *actors.BatchRule {
	if w, ok := WorkerOf(e.cfg.Workers, r).(BatchWorker); ok {
		return w.Rule()
	}
	return nil
}

// HandleBatch is the runtime's batch handler: one run of a batch worker on
// consecutive jobs of one key and kind. Jobs that cannot reach the worker
// (they do not decode) end the batch before them and are dead-lettered
// alone once the jobs before them finished.
func (e *Executor) HandleBatch(ctx context.Context, items []actors.BatchRecord) actors.BatchOutcome {
	recs := make([]*kafka.Record, len(items))
	for i, it := range items {
		recs[i] = it.Record
	}
	w, infos, badKind, badReason := e.prepareBatch(recs, func(i int) int { return items[i].Attempt })
	n := len(infos)
	if n == 0 {
		return actors.BatchFailed(0, e.unreachable(ctx, items[0].Record, items[0].Attempt, badKind, badReason, holdAt(0)))
	}
	kind := infos[0].Kind
	sctx, span := e.cfg.Tracer.Start(ctx, kind, infos[0].ID, recs[0])
	began := e.cfg.Metrics.Now()
	decoded, decodeErr, err := e.runBatch(sctx, w, infos, recs)
	span.End(err)
	e.cfg.Metrics.BatchRan(kind, decoded)
	first, firstErr := FirstFailure(e.cfg.Workers.errs, err, decoded)
	ran := decoded
	if first >= 0 {
		ran = first + 1
	}
	for i := range ran {
		var jobErr error
		if i == first {
			jobErr = firstErr
		}
		e.cfg.Metrics.JobRan(kind, began, jobErr)
		e.cfg.Tally.Ran(recs[i], kind, jobErr)
	}
	switch {
	case first >= 0:
		return actors.BatchFailed(first, e.failed(ctx, recs[first], w, infos[first], items[first].Attempt, firstErr, holdAt(first)))
	case decoded < n:
		return actors.BatchFailed(decoded, e.failed(ctx, recs[decoded], w, infos[decoded], items[decoded].Attempt, decodeErr, holdAt(decoded)))
	case n < len(items):
		return actors.BatchFailed(n, e.unreachable(ctx, items[n].Record, items[n].Attempt, badKind, badReason, holdAt(n)))
	}
	return actors.BatchDone()
}

// prepareBatch decodes the records of a batch and finds their worker, up to
// the first that cannot reach it (it does not decode, or its kind has no
// batch worker, or another one): infos are the jobs before it, and badKind
// and badReason say why it cannot.
func (e *Executor) prepareBatch(recs []*kafka.Record, attempt func(i int) int) (w BatchWorker, infos []Job, badKind, badReason string) {
	infos = make([]Job, 0, len(recs))
	for i, r := range recs {
		rw, job, kind, reason := e.prepare(r, attempt(i))
		bw, ok := rw.(BatchWorker)
		if rw != nil && !ok {
			rw, reason = nil, fmt.Sprintf("kind %q reached a batch without a batch worker", kind)
		}
		if rw == nil || (w != nil && bw != w) {
			return w, infos, kind, reason
		}
		w = bw
		infos = append(infos, job)
	}
	return w, infos, "", ""
}

// runBatch is run for a batch: the worker's timeout bounds the call, the
// kind's Work middleware wraps it (getting the batch's jobs, in order), and
// a panic fails the batch as a whole.
func (e *Executor) runBatch(ctx context.Context, w BatchWorker, infos []Job, recs []*kafka.Record) (decoded int, decodeErr, err error) {
	defer func() {
		if v := recover(); v != nil {
			decoded, err = max(decoded, 1), e.cfg.Workers.errs.Panic(v, debug.Stack())
		}
	}()
	if d := w.Timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if mw := e.cfg.Middleware[w.Kind()]; mw != nil {
		// A panic in the middleware or in the worker it called counts
		// the batch as decoded, as the middleware had it.
		decoded = len(infos)
		return mw.RunBatch(ctx, w, infos, recs)
	}
	return w.WorkBatch(ctx, infos, recs)
}

// holdAt holds job i of the batch running.
func holdAt(i int) holdFunc {
	return func(ctx context.Context) (actors.Outcome, actors.Release) { return actors.HoldBatch(ctx, i) }
}
