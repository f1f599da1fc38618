package jobs

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/testhook"
	"github.com/ordo-go/ordo/kafka"
)

func init() {
	testhook.WorkBatch = func(ctx context.Context, workers any, recs []*kafka.Record) error {
		ws := workers.(*Workers)
		e := &executor{workers: ws, middleware: workMiddleware(nil, ws)}
		w, infos, badKind, badReason := e.prepareBatch(recs, func(int) int { return 1 })
		if len(infos) < len(recs) {
			return fmt.Errorf("job %d of kind %q would be dead-lettered: %s", len(infos), badKind, badReason)
		}
		decoded, decodeErr, err := e.runBatch(ctx, w, infos, recs)
		if decoded < len(recs) {
			return errors.Join(err, fmt.Errorf("job %d: %w", decoded, decodeErr))
		}
		return err
	}
}

// DefaultMaxBatch is the batch size of a BatchWorker whose MaxBatch returns 0.
const DefaultMaxBatch = 100

// BatchWorker does the work of one job kind in batches: consecutive jobs of
// one key, in enqueue order, handed over in one call, for work that is
// cheaper in bulk (one multi-row insert per account, one bulk index request
// per document). When a key's turn comes and its next job is of this kind,
// it takes up to MaxBatch of its jobs queued behind it, stopping at the first
// job of another kind, so order holds across kinds. A batch holds one
// concurrency slot, never mixes keys, and is never run at the same time as
// another job of its key.
//
// What follows the call:
//   - nil finishes every job of the batch.
//   - BatchErrors names the jobs that failed, by index: the jobs before the
//     first of them finish, and the rest run again from it, in order, after
//     its backoff. Its attempt grows; when its attempts run out (or its
//     error is Permanent), it alone is dead-lettered and the rest go on.
//   - Any other error, or a panic, fails the batch as a whole: it counts as
//     the failure of the batch's first job, as above.
//
// A revocation lets the batch in flight finish and drops what its key
// queued beyond it: the batch in flight is what a crash may run again.
// Embed BatchWorkerDefaults for the optional methods:
//
//	type IndexWorker struct {
//		jobs.BatchWorkerDefaults[IndexArgs]
//	}
//
//	func (w *IndexWorker) WorkBatch(ctx context.Context, batch []*jobs.Job[IndexArgs]) error {
//		docs := make([]Doc, len(batch))
//		for i, job := range batch {
//			docs[i] = job.Args.Doc
//		}
//		return w.search.BulkIndex(ctx, docs)
//	}
type BatchWorker[T JobArgs] interface {
	// WorkBatch does the jobs, all of one key and of this kind, in
	// enqueue order. See BatchWorker for what its error means.
	WorkBatch(ctx context.Context, batch []*Job[T]) error
	// MaxBatch is the most jobs in one batch; 0 means DefaultMaxBatch.
	MaxBatch() int
	// MaxBatchWait is how long a key whose next job is of this kind may
	// wait for more of its jobs to fill the batch, from when that job
	// could have run; the wait ends early when the batch is full or a job
	// of another kind queues behind. 0 (the default) never waits: the
	// batch is what is queued.
	MaxBatchWait() time.Duration
	// MaxAttempts is how many failures a job is charged before it is
	// dead-lettered; 0 means the server's.
	MaxAttempts() int
	// Backoff is the wait between retries; the zero value means the
	// server's.
	Backoff() Backoff
	// Timeout bounds one WorkBatch call (its context ends); 0 means no
	// timeout.
	Timeout() time.Duration
}

// BatchWorkerDefaults gives a BatchWorker the defaults of its optional
// methods. Embed it and override what you need.
type BatchWorkerDefaults[T JobArgs] struct{}

// MaxBatch returns 0: DefaultMaxBatch.
func (BatchWorkerDefaults[T]) MaxBatch() int { return 0 }

// MaxBatchWait returns 0: never wait for a batch to fill.
func (BatchWorkerDefaults[T]) MaxBatchWait() time.Duration { return 0 }

// MaxAttempts returns 0: the server's MaxAttempts.
func (BatchWorkerDefaults[T]) MaxAttempts() int { return 0 }

// Backoff returns the zero Backoff: the server's.
func (BatchWorkerDefaults[T]) Backoff() Backoff { return Backoff{} }

// Timeout returns 0: no timeout.
func (BatchWorkerDefaults[T]) Timeout() time.Duration { return 0 }

// WorkBatchFunc turns a function into a BatchWorker with the defaults:
//
//	jobs.AddBatchWorker(workers, jobs.WorkBatchFunc(func(ctx context.Context, batch []*jobs.Job[IndexArgs]) error {
//		return index(ctx, batch)
//	}))
func WorkBatchFunc[T JobArgs](fn func(ctx context.Context, batch []*Job[T]) error) BatchWorker[T] {
	return &workBatchFunc[T]{fn: fn}
}

type workBatchFunc[T JobArgs] struct {
	BatchWorkerDefaults[T]
	fn func(ctx context.Context, batch []*Job[T]) error
}

func (w *workBatchFunc[T]) WorkBatch(ctx context.Context, batch []*Job[T]) error {
	return w.fn(ctx, batch)
}

// AddBatchWorker registers w for the kind of T, as AddWorker does (an
// optional Middleware() []Middleware included: its Work phase gets the
// batch); a kind has one worker, batch or not.
//
//	if err := jobs.AddBatchWorker(workers, &IndexWorker{}); err != nil {
//		return err
//	}
func AddBatchWorker[T JobArgs](ws *Workers, w BatchWorker[T]) error {
	missing := ""
	if f, ok := w.(*workBatchFunc[T]); w == nil || ok && f.fn == nil {
		missing = "worker is nil"
		if ok {
			missing = "worker is WorkBatchFunc(nil); give WorkBatchFunc the func that works the batch"
		}
	}
	return register[T](ws, "AddBatchWorker", w, missing, func(kind string) (registeredWorker, error) {
		if n := w.MaxBatch(); n < 0 {
			return nil, fmt.Errorf("%T.MaxBatch() must not be negative (got %d)", w, n)
		}
		if d := w.MaxBatchWait(); d < 0 {
			return nil, fmt.Errorf("%T.MaxBatchWait() must not be negative (got %v)", w, d)
		}
		tw := &typedBatchWorker[T]{w: w, kindName: kind, rule: actors.BatchRule{Max: w.MaxBatch(), Wait: w.MaxBatchWait()}}
		if tw.rule.Max == 0 {
			tw.rule.Max = DefaultMaxBatch
		}
		return tw, nil
	})
}

// BatchErrors is the error a BatchWorker returns to name the jobs of a batch
// that failed, by their index in the batch, with their errors (which may be
// Permanent or RetryAfter). Nil errors and an empty BatchErrors count as no
// failure. An index outside the batch fails the whole batch.
//
//	errs := jobs.BatchErrors{}
//	for i, res := range bulkResponse.Items {
//		if res.Err != nil {
//			errs[i] = res.Err
//		}
//	}
//	return errs
type BatchErrors map[int]error

func (e BatchErrors) Error() string {
	idx := make([]int, 0, len(e))
	for i, err := range e {
		if err != nil {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d jobs of the batch failed", len(idx))
	for n, i := range idx {
		if n == 3 {
			fmt.Fprintf(&sb, "; and %d more", len(idx)-n)
			break
		}
		fmt.Fprintf(&sb, "; job %d: %v", i, e[i])
	}
	return sb.String()
}

// firstFailure is the index of the first job that err, WorkBatch's error for
// a batch of n, says failed, with its error; -1 if none did.
func firstFailure(err error, n int) (int, error) {
	if err == nil {
		return -1, nil
	}
	var be BatchErrors
	if !errors.As(err, &be) {
		return 0, err
	}
	first, firstErr := -1, error(nil)
	for i, e := range be {
		if e == nil {
			continue
		}
		if i < 0 || i >= n {
			return 0, fmt.Errorf("BatchErrors names job %d of a batch of %d: %w", i, n, err)
		}
		if first < 0 || i < first {
			first, firstErr = i, e
		}
	}
	return first, firstErr
}

// batchRunner is a registered BatchWorker with T erased.
type batchRunner interface {
	registeredWorker
	batchRule() *actors.BatchRule
	// workBatch decodes the jobs' args and calls WorkBatch on those
	// before the first that does not decode; decoded is how many that
	// is, and decodeErr why the next did not decode.
	workBatch(ctx context.Context, infos []jobInfo, recs []*kafka.Record) (decoded int, decodeErr, err error)
}

type typedBatchWorker[T JobArgs] struct {
	w        BatchWorker[T]
	kindName string
	rule     actors.BatchRule
}

func (t *typedBatchWorker[T]) name() string                 { return fmt.Sprintf("%T", t.w) }
func (t *typedBatchWorker[T]) kind() string                 { return t.kindName }
func (t *typedBatchWorker[T]) maxAttempts() int             { return t.w.MaxAttempts() }
func (t *typedBatchWorker[T]) backoff() Backoff             { return t.w.Backoff() }
func (t *typedBatchWorker[T]) timeout() time.Duration       { return t.w.Timeout() }
func (t *typedBatchWorker[T]) longRunning() bool            { return false }
func (t *typedBatchWorker[T]) batchRule() *actors.BatchRule { return &t.rule }

// run is a batch of one, for a job that reaches the worker outside a batch
// (a record with no kind header).
func (t *typedBatchWorker[T]) run(ctx context.Context, info jobInfo, r *kafka.Record) error {
	decoded, decodeErr, err := t.workBatch(ctx, []jobInfo{info}, []*kafka.Record{r})
	if decoded == 0 {
		return decodeErr
	}
	if _, jobErr := firstFailure(err, 1); jobErr != nil {
		return jobErr
	}
	return nil
}

func (t *typedBatchWorker[T]) workBatch(ctx context.Context, infos []jobInfo, recs []*kafka.Record) (int, error, error) {
	batch := make([]*Job[T], 0, len(infos))
	all := make([]Job[T], len(infos))
	var decodeErr error
	for i, info := range infos {
		if decodeErr = fillJob(&all[i], info, recs[i]); decodeErr != nil {
			break
		}
		batch = append(batch, &all[i])
	}
	if len(batch) == 0 {
		return 0, decodeErr, nil
	}
	return len(batch), decodeErr, t.w.WorkBatch(ctx, batch)
}

// hasBatchWorkers tells whether any kind is worked in batches.
func (ws *Workers) hasBatchWorkers() bool {
	if ws == nil {
		return false
	}
	for _, w := range ws.byKind {
		if _, ok := w.(batchRunner); ok {
			return true
		}
	}
	return false
}

// batchRule is the runtime's Config.Batch: a job of a batch worker's kind
// runs in a batch; any other record alone.
func (e *executor) batchRule(r *kafka.Record) *actors.BatchRule {
	if w, ok := e.workers.byKind[string(r.Header(HeaderKind))].(batchRunner); ok {
		return w.batchRule()
	}
	return nil
}

// handleBatch is the runtime's batch handler: one run of a batch worker on
// consecutive jobs of one key and kind. Jobs that cannot reach the worker
// (they do not decode) end the batch before them and are dead-lettered
// alone once the jobs before them finished.
func (e *executor) handleBatch(ctx context.Context, items []actors.BatchRecord) actors.BatchOutcome {
	recs := make([]*kafka.Record, len(items))
	for i, it := range items {
		recs[i] = it.Record
	}
	w, infos, badKind, badReason := e.prepareBatch(recs, func(i int) int { return items[i].Attempt })
	n := len(infos)
	if n == 0 {
		r := items[0].Record
		e.tally.Failure(r, badKind, string(r.Header(HeaderJobID)), items[0].Attempt, badReason, true)
		return actors.BatchFailed(0, e.deadLetter(ctx, r, items[0].Attempt, badKind, badReason, holdAt(0)))
	}
	kind := infos[0].kind
	sctx, span := e.tracer.Start(ctx, kind, infos[0].id, recs[0])
	began := e.metrics.now()
	decoded, decodeErr, err := e.runBatch(sctx, w, infos, recs)
	span.End(err)
	e.metrics.batchRan(kind, decoded)
	first, firstErr := firstFailure(err, decoded)
	ran := decoded
	if first >= 0 {
		ran = first + 1
	}
	for i := range ran {
		var jobErr error
		if i == first {
			jobErr = firstErr
		}
		e.metrics.jobRan(kind, began, jobErr)
		e.tally.Ran(recs[i], kind, jobErr)
	}
	switch {
	case first >= 0:
		return actors.BatchFailed(first, e.failed(ctx, recs[first], w, infos[first], items[first].Attempt, firstErr, holdAt(first)))
	case decoded < n:
		return actors.BatchFailed(decoded, e.failed(ctx, recs[decoded], w, infos[decoded], items[decoded].Attempt, decodeErr, holdAt(decoded)))
	case n < len(items):
		r := items[n].Record
		e.tally.Failure(r, badKind, string(r.Header(HeaderJobID)), items[n].Attempt, badReason, true)
		return actors.BatchFailed(n, e.deadLetter(ctx, r, items[n].Attempt, badKind, badReason, holdAt(n)))
	}
	return actors.BatchDone()
}

// prepareBatch decodes the records of a batch and finds their worker, up to
// the first that cannot reach it (it does not decode, or its kind has no
// batch worker, or another one): infos are the jobs before it, and badKind
// and badReason say why it cannot.
func (e *executor) prepareBatch(recs []*kafka.Record, attempt func(i int) int) (w batchRunner, infos []jobInfo, badKind, badReason string) {
	infos = make([]jobInfo, 0, len(recs))
	for i, r := range recs {
		rw, job, kind, reason := e.prepare(r, attempt(i))
		bw, ok := rw.(batchRunner)
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
func (e *executor) runBatch(ctx context.Context, w batchRunner, infos []jobInfo, recs []*kafka.Record) (decoded int, decodeErr, err error) {
	defer func() {
		if v := recover(); v != nil {
			decoded, err = max(decoded, 1), &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if d := w.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	mws := e.middleware[w.kind()]
	if len(mws) == 0 {
		return w.workBatch(ctx, infos, recs)
	}
	// The middleware gets copies of the records' headers and the jobs'
	// args, as for a job run alone; what it leaves is what the worker
	// sees.
	raws := make([]RawJob, len(infos))
	ptrs := make([]*RawJob, len(infos))
	for i, info := range infos {
		raws[i] = RawJob{Kind: info.kind, ID: info.id, Headers: slices.Clone(recs[i].Headers), Args: slices.Clone(info.args)}
		ptrs[i] = &raws[i]
	}
	decoded = len(infos)
	err = runWork(ctx, mws, ptrs, func(ctx context.Context) error {
		seen := make([]kafka.Record, len(recs))
		seenPtrs := make([]*kafka.Record, len(recs))
		changed := slices.Clone(infos)
		for i := range recs {
			seen[i] = *recs[i]
			seen[i].Headers = raws[i].Headers
			changed[i].args = raws[i].Args
			seenPtrs[i] = &seen[i]
		}
		var werr error
		decoded, decodeErr, werr = w.workBatch(ctx, changed, seenPtrs)
		return werr
	})
	return decoded, decodeErr, err
}

// holdAt holds job i of the batch running.
func holdAt(i int) holdFunc {
	return func(ctx context.Context) (actors.Outcome, actors.Release) { return actors.HoldBatch(ctx, i) }
}
