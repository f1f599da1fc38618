// Package executor owns a job's life on this process: it decodes the
// record's envelope, finds the kind's worker in a Registry, runs it under its
// timeout and Work middleware with a panic turned into an error, traces and
// counts the run, asks supervision what follows a failure, and hands the
// actor runtime an Outcome: done, retried after a back-off, or held until
// its dead letter is written. Batches of one key's jobs go the same way.
//
// It knows nothing of jobs' types: package jobs registers adapters of its
// typed workers (Worker, BatchWorker), and says how its middleware runs
// (Middleware) and what its errors are (Errors). jobs.Server runs its records
// through an Executor, and jobstest runs workers through Work and WorkBatch,
// so tests and production cannot drift apart.
package executor

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/deadletter"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/metrics"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/internal/tracing"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// HeaderReplayOf names the header of a replay's marker (jobs.HeaderReplayOf);
// TestInternalPackagesSpellJobsNamesAlike (jobs) keeps the two alike.
const HeaderReplayOf = "ordo-replay-of"

// Config configures an Executor.
type Config struct {
	Workers     *Registry
	MaxAttempts int
	Backoff     supervision.Backoff
	// DeadLetter writes the dead letter of r, which failed its attempt
	// for reason, and calls release once the broker has it.
	DeadLetter func(r *kafka.Record, attempt int, kind, reason string, release actors.Release)
	Metrics    *metrics.Set    // nil records nothing
	Tally      *status.Tally   // nil when the status reports are off
	Tracer     *tracing.Tracer // nil when tracing is off
	Log        *slog.Logger
	// Middleware is the Work middleware by kind, nil when no kind has
	// any, so that a run costs one length check.
	Middleware map[string]Middleware
	// MaxReasonBytes cuts the errors in log lines (deadletter.Cut).
	MaxReasonBytes int
}

// Executor runs a server's jobs: its Handle and HandleBatch are the actor
// runtime's handlers.
type Executor struct{ cfg Config }

// New returns the Executor of cfg.
func New(cfg Config) *Executor { return &Executor{cfg} }

// Job is a decoded job before its args are: what a typed worker needs to
// build the job it is handed.
type Job struct {
	Kind, ID   string
	EnqueuedAt time.Time
	Attempt    int
	Metadata   map[string]string
	Args       []byte
}

// Handle is the runtime's handler: one attempt of the job in r.
func (e *Executor) Handle(ctx context.Context, r *kafka.Record, attempt int) actors.Outcome {
	w, job, kind, reason := e.prepare(r, attempt)
	if w == nil && replayMarker(r) {
		return actors.Done()
	}
	if w == nil {
		return e.unreachable(ctx, r, attempt, kind, reason, single)
	}
	ctx, span := e.cfg.Tracer.Start(ctx, job.Kind, job.ID, r)
	began := e.cfg.Metrics.Now()
	err := e.run(ctx, w, job, r)
	e.cfg.Metrics.JobRan(job.Kind, began, err)
	e.cfg.Tally.Ran(r, job.Kind, err)
	span.End(err)
	if err == nil {
		return actors.Done()
	}
	return e.failed(ctx, r, w, job, attempt, err, single)
}

// unreachable dead-letters r, a record that cannot reach a worker (kind is
// the kind it claims, reason why), and counts it as a failure.
func (e *Executor) unreachable(ctx context.Context, r *kafka.Record, attempt int, kind, reason string, hold holdFunc) actors.Outcome {
	e.cfg.Tally.Failure(r, kind, string(r.Header(envelope.HeaderJobID)), attempt, reason, true)
	return e.deadLetter(ctx, r, attempt, kind, reason, hold)
}

// replayMarker tells whether r is the marker a replay appends to a
// dead-letter topic (see jobs.HeaderReplayOf), which a server reading that
// topic to re-run its dead letters commits without running or
// dead-lettering it. Only a record that is no job (it has no worker) is
// asked.
func replayMarker(r *kafka.Record) bool {
	return len(r.Value) == 0 && r.Header(HeaderReplayOf) != nil
}

// prepare decodes the record and finds its worker; when there is none (or
// the value does not decode) it says why, and the kind the record claims.
func (e *Executor) prepare(r *kafka.Record, attempt int) (w Worker, job Job, kind, reason string) {
	kindHeader := r.Header(envelope.HeaderKind)
	if len(r.Value) == 0 {
		return nil, job, string(kindHeader), "empty value"
	}
	var env envelope.View
	if err := envelope.DecodeView(r.Value, &env); err != nil {
		return nil, job, string(kindHeader), err.Error()
	}
	// The kind header routes when present (bad input may disagree with its
	// value); indexing with string(bytes) does not allocate, and the
	// worker's own kind string serves logs, metrics and spans.
	k := kindHeader
	if len(k) == 0 {
		k = env.Kind
	}
	if w = e.cfg.Workers.byKind[string(k)]; w == nil {
		return nil, job, string(k), fmt.Sprintf("no worker for kind %q", k)
	}
	job = Job{
		Kind: w.Kind(),
		// The id aliases the record's own bytes, which nothing writes
		// to: a job id that outlives its job keeps only its record's
		// bytes alive.
		ID:         unsafe.String(unsafe.SliceData(env.ID), len(env.ID)),
		EnqueuedAt: env.EnqueuedAt,
		Attempt:    env.Attempt + attempt,
		Metadata:   env.Metadata,
		Args:       env.Args,
	}
	return w, job, job.Kind, ""
}

// run runs the worker on the job: its args decoded, its timeout applied,
// inside its Work middleware, a panic turned into the registry's panic
// error.
func (e *Executor) run(ctx context.Context, w Worker, job Job, r *kafka.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = e.cfg.Workers.errs.Panic(v, debug.Stack())
		}
	}()
	if d := w.Timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if len(e.cfg.Middleware) > 0 {
		if mw := e.cfg.Middleware[job.Kind]; mw != nil {
			return mw.Run(ctx, w, job, r)
		}
	}
	return w.Run(ctx, job, r)
}

// failed decides what follows a failed run: another attempt after a
// back-off, or the dead-letter topic (held by hold).
func (e *Executor) failed(ctx context.Context, r *kafka.Record, w Worker, job Job, attempt int, err error, hold holdFunc) actors.Outcome {
	if actors.Revoked(ctx) {
		// The job stopped because its partition went away (a long job
		// watching its context): it is dropped, not retried here, and
		// its partition's next owner runs it again.
		e.cfg.Log.Info("ordo: job stopped by revocation; the partition's next owner runs it again",
			"kind", job.Kind, "job_id", job.ID, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", e.errText(err))
		return actors.Retry(0)
	}
	if v, stack, ok := e.cfg.Workers.errs.Panicked(err); ok {
		e.cfg.Log.Error("ordo: job panicked", "kind", job.Kind, "job_id", job.ID, "attempt", attempt,
			"panic", deadletter.Cut(fmt.Sprint(v), e.cfg.MaxReasonBytes), "stack", string(stack))
	}
	maxAttempts := e.cfg.MaxAttempts
	if n := w.MaxAttempts(); n > 0 {
		maxAttempts = n
	}
	backoff := e.cfg.Backoff
	if b := w.Backoff(); b != (supervision.Backoff{}) {
		backoff = b
	}
	d := supervision.Decide(attempt, maxAttempts, err, backoff)
	e.cfg.Tally.Failure(r, job.Kind, job.ID, job.Attempt, err.Error(), d.DeadLetter)
	if d.DeadLetter {
		return e.deadLetter(ctx, r, attempt, job.Kind, d.Reason, hold)
	}
	e.cfg.Metrics.JobRetried(job.Kind)
	e.cfg.Tally.Retried(job.Kind)
	e.cfg.Log.Warn("ordo: job failed; will retry", "kind", job.Kind, "job_id", job.ID,
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
		"attempt", attempt, "max_attempts", maxAttempts, "retry_in", d.Delay, "err", e.errText(err))
	return actors.Retry(d.Delay)
}

// deadLetter hands the record to the dead-letter writer and holds its key
// until the broker has the dead letter; only then does it count as
// finished.
func (e *Executor) deadLetter(ctx context.Context, r *kafka.Record, attempt int, kind, reason string, hold holdFunc) actors.Outcome {
	out, release := hold(ctx)
	e.cfg.DeadLetter(r, attempt, kind, reason, release)
	return out
}

// holdFunc holds the record being dead-lettered: actors.Hold for a job run
// alone, actors.HoldBatch for one of a batch.
type holdFunc func(ctx context.Context) (actors.Outcome, actors.Release)

var single holdFunc = actors.Hold

// errText logs err's text cut to MaxReasonBytes.
func (e *Executor) errText(err error) slog.LogValuer {
	return deadletter.ErrText(err, e.cfg.MaxReasonBytes)
}
