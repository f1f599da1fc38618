package jobs

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/validate"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// Worker does the work of one job kind. Work runs inside the actor of the
// job's key: never at the same time as another job of that key, and only
// after every job of that key enqueued before it finished.
//
// Embed WorkerDefaults to get the optional methods:
//
//	type SendEmailWorker struct {
//		jobs.WorkerDefaults[SendEmailArgs]
//	}
//
//	func (w *SendEmailWorker) Work(ctx context.Context, job *jobs.Job[SendEmailArgs]) error {
//		return send(ctx, job.Args.To, job.Args.Subject)
//	}
type Worker[T JobArgs] interface {
	// Work does the job. A returned error is retried with backoff until
	// MaxAttempts, then the job goes to the dead-letter topic; wrap it
	// with Permanent to skip the retries, or RetryAfter to choose the
	// wait.
	Work(ctx context.Context, job *Job[T]) error
	// MaxAttempts is how many runs a job gets before it is
	// dead-lettered; 0 means the server's.
	MaxAttempts() int
	// Backoff is the wait between retries; the zero value means the
	// server's.
	Backoff() Backoff
	// Timeout bounds one run (its context ends); 0 means no timeout.
	Timeout() time.Duration
	// LongRunning puts the kind in long-running mode: a job may run
	// longer than the group's rebalance timeout; a revocation does not
	// wait for it but cancels its context after a grace period, and its
	// offset is not committed, so a revoked long job runs again on the
	// partition's next owner. Use Revoked(ctx) to stop early.
	LongRunning() bool
}

// WorkerDefaults gives a Worker the defaults of its optional methods. Embed
// it and override what you need.
type WorkerDefaults[T JobArgs] struct{}

// MaxAttempts returns 0: the server's MaxAttempts.
func (WorkerDefaults[T]) MaxAttempts() int { return 0 }

// Backoff returns the zero Backoff: the server's.
func (WorkerDefaults[T]) Backoff() Backoff { return Backoff{} }

// Timeout returns 0: no timeout.
func (WorkerDefaults[T]) Timeout() time.Duration { return 0 }

// LongRunning returns false.
func (WorkerDefaults[T]) LongRunning() bool { return false }

// WorkFunc turns a function into a Worker with the defaults:
//
//	jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SendEmailArgs]) error {
//		return send(ctx, job.Args.To, job.Args.Subject)
//	}))
func WorkFunc[T JobArgs](fn func(ctx context.Context, job *Job[T]) error) Worker[T] {
	return &workFunc[T]{fn: fn}
}

type workFunc[T JobArgs] struct {
	WorkerDefaults[T]
	fn func(ctx context.Context, job *Job[T]) error
}

func (w *workFunc[T]) Work(ctx context.Context, job *Job[T]) error { return w.fn(ctx, job) }

// Workers is the registry of workers by kind. Build it before the Server.
type Workers = executor.Registry

// NewWorkers returns an empty registry.
func NewWorkers() *Workers { return executor.NewRegistry(jobErrors{}) }

// AddWorker registers w for the kind of T. A second worker for one kind is
// refused: which of the two should run would be a guess. A worker with a
// method Middleware() []Middleware runs its jobs inside that middleware's
// Work phase, within Config.Middleware (see Middleware); it is read once,
// here.
//
//	workers := jobs.NewWorkers()
//	if err := jobs.AddWorker(workers, &SendEmailWorker{}); err != nil {
//		return err
//	}
func AddWorker[T JobArgs](ws *Workers, w Worker[T]) error {
	missing := ""
	if f, ok := w.(*workFunc[T]); w == nil || ok && f.fn == nil {
		missing = "worker is nil"
		if ok {
			missing = "worker is WorkFunc(nil); give WorkFunc the func that works the job"
		}
	}
	return register[T](ws, "AddWorker", w, missing, func(kind string) (executor.Worker, error) {
		return &typedWorker[T]{w: w, kindName: kind}, nil
	})
}

// register adds the worker build makes for the kind of T, with its Work
// middleware; fn names the call in errors, w is the user's worker, missing
// says what of it is nil (see executor.Register).
func register[T JobArgs](ws *Workers, fn string, w any, missing string, build func(kind string) (executor.Worker, error)) error {
	var zero T
	err := executor.Register(ws, zero, w, missing, build, func() (executor.Middleware, error) {
		m, ok := w.(workerMiddleware)
		if !ok {
			return nil, nil
		}
		mws := slices.Clone(m.Middleware())
		if err := validate.NoneNil(mws); err != nil {
			return nil, fmt.Errorf("%T.Middleware()%w", w, err)
		}
		if len(mws) == 0 {
			return nil, nil
		}
		return workChain(mws), nil
	})
	if err != nil {
		return fmt.Errorf("jobs: %s: %w", fn, err)
	}
	return nil
}

// typedWorker is a Worker[T] as the executor runs it.
type typedWorker[T JobArgs] struct {
	w        Worker[T]
	kindName string
}

func (t *typedWorker[T]) Name() string           { return fmt.Sprintf("%T", t.w) }
func (t *typedWorker[T]) Kind() string           { return t.kindName }
func (t *typedWorker[T]) MaxAttempts() int       { return t.w.MaxAttempts() }
func (t *typedWorker[T]) Backoff() Backoff       { return t.w.Backoff() }
func (t *typedWorker[T]) Timeout() time.Duration { return t.w.Timeout() }
func (t *typedWorker[T]) LongRunning() bool      { return t.w.LongRunning() }

func (t *typedWorker[T]) Run(ctx context.Context, info executor.Job, r *kafka.Record) error {
	job := new(Job[T])
	if err := fillJob(job, info, r); err != nil {
		return err
	}
	return t.w.Work(ctx, job)
}

// fillJob makes job the Job a worker gets for info, read from r: its args
// decoded, or a Permanent error saying why they do not decode.
func fillJob[T JobArgs](job *Job[T], info executor.Job, r *kafka.Record) error {
	*job = Job[T]{
		ID: info.ID, Kind: info.Kind, EnqueuedAt: info.EnqueuedAt, Attempt: info.Attempt,
		Metadata: info.Metadata, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key,
		Headers: r.Headers,
	}
	if err := executor.DecodeArgs(info.Args, &job.Args); err != nil {
		return Permanent(fmt.Errorf("args of kind %q do not decode into %T: %w", info.Kind, job.Args, err))
	}
	return nil
}

// PanicError is the error a worker's panic turns into: the job is retried
// and dead-lettered like any failure, and the stack is logged.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("job panicked: %v", e.Value) }

// Permanent wraps err so the job goes to the dead-letter topic at once,
// without retries: for failures that retrying cannot fix.
func Permanent(err error) error { return supervision.Permanent(err) }

// RetryAfter wraps err so the job runs again after d rather than after the
// backoff's wait (while attempts remain).
func RetryAfter(d time.Duration, err error) error { return supervision.RetryAfter(d, err) }

// Revoked tells a running job whether its partition was revoked (or the
// server is stopping) since it started. A long-running job should check it,
// or watch ctx, and stop early: its work will run again on the partition's
// next owner.
func Revoked(ctx context.Context) bool { return actors.Revoked(ctx) }

// KeyState returns state of type S that lives as long as the actor of the
// job's key: created zero when first asked for, seen by every later job of
// that key on this process, never by another key's jobs, and dropped when the
// key's actor is passivated (idle) or its partition revoked. Reload it from
// your store when it comes back empty. Only use it inside Work.
//
//	type balance struct{ loaded bool; cents int64 }
//	b := jobs.KeyState[balance](ctx)
//	if !b.loaded { b.cents, b.loaded = load(job.Args.Account), true }
func KeyState[S any](ctx context.Context) *S {
	st := actors.KeyStateOf(ctx)
	if st == nil {
		return new(S)
	}
	name := reflect.TypeFor[S]()
	if v, ok := st.Get(name); ok {
		return v.(*S)
	}
	s := new(S)
	st.Set(name, s)
	return s
}
