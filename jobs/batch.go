package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/kafka"
)

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
	return register[T](ws, "AddBatchWorker", w, missing, func(kind string) (executor.Worker, error) {
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

// jobErrors is how the executor makes and reads PanicError and
// BatchErrors, which it cannot name.
type jobErrors struct{}

func (jobErrors) Panic(v any, stack []byte) error { return &PanicError{Value: v, Stack: stack} }

func (jobErrors) Panicked(err error) (any, []byte, bool) {
	var pe *PanicError
	if errors.As(err, &pe) {
		return pe.Value, pe.Stack, true
	}
	return nil, nil, false
}

func (jobErrors) Failed(err error) (map[int]error, bool) {
	var be BatchErrors
	ok := errors.As(err, &be)
	return be, ok
}

// typedBatchWorker is a BatchWorker[T] as the executor runs it.
type typedBatchWorker[T JobArgs] struct {
	w        BatchWorker[T]
	kindName string
	rule     actors.BatchRule
}

func (t *typedBatchWorker[T]) Name() string            { return fmt.Sprintf("%T", t.w) }
func (t *typedBatchWorker[T]) Kind() string            { return t.kindName }
func (t *typedBatchWorker[T]) MaxAttempts() int        { return t.w.MaxAttempts() }
func (t *typedBatchWorker[T]) Backoff() Backoff        { return t.w.Backoff() }
func (t *typedBatchWorker[T]) Timeout() time.Duration  { return t.w.Timeout() }
func (t *typedBatchWorker[T]) LongRunning() bool       { return false }
func (t *typedBatchWorker[T]) Rule() *actors.BatchRule { return &t.rule }

// Run is a batch of one, for a job that reaches the worker outside a batch
// (a record with no kind header).
func (t *typedBatchWorker[T]) Run(ctx context.Context, info executor.Job, r *kafka.Record) error {
	return executor.RunAlone(ctx, t, jobErrors{}, info, r)
}

func (t *typedBatchWorker[T]) WorkBatch(ctx context.Context, infos []executor.Job, recs []*kafka.Record) (int, error, error) {
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
