package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// Worker is a registered worker with its args' type erased: package jobs'
// adapter of a Worker[T].
type Worker interface {
	Kind() string
	// Run decodes the job's args and does the work; the executor applies
	// the timeout and recovers a panic around it.
	Run(ctx context.Context, job Job, r *kafka.Record) error
	MaxAttempts() int // 0: the server's
	Backoff() supervision.Backoff
	Timeout() time.Duration
	LongRunning() bool
	// Name names the user's worker in errors: its type.
	Name() string
}

// BatchWorker is a registered worker that works its kind in batches.
type BatchWorker interface {
	Worker
	Rule() *actors.BatchRule
	// WorkBatch decodes the jobs' args and does the work of those before
	// the first that does not decode; decoded is how many that is, and
	// decodeErr why the next did not decode.
	WorkBatch(ctx context.Context, jobs []Job, recs []*kafka.Record) (decoded int, decodeErr, err error)
}

// Middleware runs a kind's Work middleware around its worker: a
// middleware.Work of jobs.Middleware's Work methods.
type Middleware interface {
	Run(ctx context.Context, w Worker, job Job, r *kafka.Record) error
	RunBatch(ctx context.Context, w BatchWorker, jobs []Job, recs []*kafka.Record) (decoded int, decodeErr, err error)
}

// Errors builds and reads the errors of package jobs that this package
// cannot name: the *jobs.PanicError a panic becomes, and the
// jobs.BatchErrors a batch worker names its failed jobs with.
type Errors interface {
	// Panic is the error a panic with value v, at stack, becomes.
	Panic(v any, stack []byte) error
	// Panicked reads a panic's value and stack back from err.
	Panicked(err error) (v any, stack []byte, ok bool)
	// Failed reads the failed jobs of a batch, by index, from err, a
	// BatchWorker's error; ok is false when err does not name them.
	Failed(err error) (failed map[int]error, ok bool)
}

// FirstFailure is the index of the first job that err, a batch's error for
// a batch of n, says failed, with its error; -1 if none did.
func FirstFailure(errs Errors, err error, n int) (int, error) {
	if err == nil {
		return -1, nil
	}
	failed, ok := errs.Failed(err)
	if !ok {
		return 0, err
	}
	first, firstErr := -1, error(nil)
	for i, e := range failed {
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

// RunAlone runs w's batch of one job, for a job that reaches a batch worker
// outside a batch (a record with no kind header), and returns the job's
// error.
func RunAlone(ctx context.Context, w BatchWorker, errs Errors, job Job, r *kafka.Record) error {
	decoded, decodeErr, err := w.WorkBatch(ctx, []Job{job}, []*kafka.Record{r})
	if decoded == 0 {
		return decodeErr
	}
	_, jobErr := FirstFailure(errs, err, 1)
	return jobErr
}

// Registry is the workers by kind (jobs.Workers), with the Work middleware
// of those that bring their own.
type Registry struct {
	byKind     map[string]Worker
	middleware map[string]Middleware
	errs       Errors
}

// NewRegistry returns an empty registry whose workers' errors are errs'.
func NewRegistry(errs Errors) *Registry {
	return &Registry{byKind: map[string]Worker{}, errs: errs}
}

// Add registers w in ws for its kind, replacing any other, with its own Work
// middleware mw (nil when it has none). The registry's operations are
// functions rather than methods because jobs.Workers is this type: methods
// would be callable by every user of jobs.
func Add(ws *Registry, w Worker, mw Middleware) {
	ws.byKind[w.Kind()] = w
	if mw != nil {
		if ws.middleware == nil {
			ws.middleware = map[string]Middleware{}
		}
		ws.middleware[w.Kind()] = mw
	}
}

// Register adds the worker build makes for the kind of args (a zero job
// args value) to ws, with the Work middleware own reads from it (nil when
// it brings none). w is the user's worker and missing says what of it is
// nil, empty when nothing is: a worker that would panic on its first job is
// refused here, not dead-lettered later. A second worker for a kind is
// refused too.
func Register(ws *Registry, args interface{ Kind() string }, w any, missing string, build func(kind string) (Worker, error), own func() (Middleware, error)) error {
	if ws == nil {
		return errors.New("nil Workers")
	}
	if missing != "" {
		return errors.New(missing)
	}
	kind := args.Kind()
	if kind == "" {
		return fmt.Errorf("%T.Kind() is empty", args)
	}
	if prev := Lookup(ws, kind); prev != nil {
		return fmt.Errorf("kind %q already has worker %s; refusing %T", kind, prev.Name(), w)
	}
	rw, err := build(kind)
	if err != nil {
		return err
	}
	mw, err := own()
	if err != nil {
		return err
	}
	Add(ws, rw, mw)
	return nil
}

// Lookup returns the worker of kind in ws, nil when there is none.
func Lookup(ws *Registry, kind string) Worker {
	if ws == nil {
		return nil
	}
	return ws.byKind[kind]
}

// WorkerOf returns the worker of the kind r's kind header names, nil when
// there is none; it does not allocate.
func WorkerOf(ws *Registry, r *kafka.Record) Worker {
	if ws == nil {
		return nil
	}
	return ws.byKind[string(r.Header(envelope.HeaderKind))]
}

// Kinds returns the kinds that have a worker, in no order.
func Kinds(ws *Registry) []string {
	if ws == nil {
		return nil
	}
	return slices.Collect(maps.Keys(ws.byKind))
}

// MiddlewareOf returns the Work middleware the worker of kind brought, nil
// when it brought none.
func MiddlewareOf(ws *Registry, kind string) Middleware { return ws.middleware[kind] }

// Work runs the job record r as attempt, as a server would, through the
// worker of its kind in ws and that worker's own Work middleware: its args
// decoded, its timeout applied, a panic turned into an error. It returns
// the worker's error, or why the record could not reach a worker; nothing
// is retried, counted or dead-lettered. jobstest runs workers through it.
func Work(ctx context.Context, ws *Registry, r *kafka.Record, attempt int) error {
	e := New(Config{Workers: ws, Middleware: ws.middleware})
	w, job, kind, reason := e.prepare(r, attempt)
	if w == nil {
		return fmt.Errorf("job of kind %q would be dead-lettered: %s", kind, reason)
	}
	return e.run(ctx, w, job, r)
}

// WorkBatch is Work for a batch worker: it decodes the job records recs (one
// key's, in order) and runs the worker of their kind on them in one batch.
// It returns the worker's error as returned (a jobs.BatchErrors included),
// or why a record could not reach the worker.
func WorkBatch(ctx context.Context, ws *Registry, recs []*kafka.Record) error {
	e := New(Config{Workers: ws, Middleware: ws.middleware})
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
