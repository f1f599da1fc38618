package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/internal/testhook"
	"github.com/ordo-go/ordo/internal/tracing"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// executor owns a job's life on this process: it decodes the record, finds
// the worker, runs it under its timeout, turns a panic into an error, asks
// supervision what follows a failure, and hands the runtime an Outcome. It is
// the one place that does each of these; jobstest runs workers through it
// too, so tests and production cannot drift apart.
type executor struct {
	workers     *Workers
	maxAttempts int
	backoff     supervision.Backoff
	deadLetters *deadLetterWriter
	metrics     *Metrics
	tally       *status.Tally // nil when the status reports are off
	tracer      *tracing.Tracer
	log         *slog.Logger
	// middleware is the Work middleware by kind, nil when there is none
	// (see workMiddleware).
	middleware map[string][]Middleware
}

// PanicError is the error a worker's panic turns into: the job is retried
// and dead-lettered like any failure, and the stack is logged.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("job panicked: %v", e.Value) }

func init() {
	testhook.Work = func(ctx context.Context, workers any, r *kafka.Record, attempt int) error {
		ws := workers.(*Workers)
		e := &executor{workers: ws, middleware: workMiddleware(nil, ws)}
		w, job, kind, reason := e.prepare(r, attempt)
		if w == nil {
			return fmt.Errorf("job of kind %q would be dead-lettered: %s", kind, reason)
		}
		return e.run(ctx, w, job, r)
	}
}

// handle is the runtime's handler: one attempt of the job in r.
func (e *executor) handle(ctx context.Context, r *kafka.Record, attempt int) actors.Outcome {
	w, job, kind, reason := e.prepare(r, attempt)
	if w == nil && replayMarker(r) {
		return actors.Done()
	}
	if w == nil {
		e.tally.Failure(r, kind, string(r.Header(HeaderJobID)), attempt, reason, true)
		return e.deadLetter(ctx, r, attempt, kind, reason, single)
	}
	ctx, span := e.tracer.Start(ctx, job.kind, job.id, r)
	began := e.metrics.now()
	err := e.run(ctx, w, job, r)
	e.metrics.jobRan(job.kind, began, err)
	e.tally.Ran(r, job.kind, err)
	span.End(err)
	if err == nil {
		return actors.Done()
	}
	return e.failed(ctx, r, w, job, attempt, err, single)
}

// prepare decodes the record and finds its worker; when there is none (or
// the value does not decode) it says why, and the kind the record claims.
func (e *executor) prepare(r *kafka.Record, attempt int) (w registeredWorker, job jobInfo, kind, reason string) {
	kindHeader := r.Header(HeaderKind)
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
	if w = e.workers.byKind[string(k)]; w == nil {
		return nil, job, string(k), fmt.Sprintf("no worker for kind %q", k)
	}
	job = jobInfo{
		kind: w.kind(),
		// The id aliases the record's own bytes, which nothing writes
		// to: a job id that outlives its job keeps only its record's
		// bytes alive.
		id:         unsafe.String(unsafe.SliceData(env.ID), len(env.ID)),
		enqueuedAt: env.EnqueuedAt,
		attempt:    env.Attempt + attempt,
		metadata:   env.Metadata,
		args:       env.Args,
	}
	return w, job, job.kind, ""
}

// run runs the worker on the job: its args decoded, its timeout applied,
// inside its Work middleware, a panic turned into a *PanicError.
func (e *executor) run(ctx context.Context, w registeredWorker, job jobInfo, r *kafka.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	if d := w.timeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if len(e.middleware) > 0 {
		if mws := e.middleware[job.kind]; len(mws) > 0 {
			return e.runThrough(ctx, mws, w, job, r)
		}
	}
	return w.run(ctx, job, r)
}

// failed decides what follows a failed run: another attempt after a
// back-off, or the dead-letter topic (held by hold).
func (e *executor) failed(ctx context.Context, r *kafka.Record, w registeredWorker, job jobInfo, attempt int, err error, hold holdFunc) actors.Outcome {
	if actors.Revoked(ctx) {
		// The job stopped because its partition went away (a long job
		// watching its context): it is dropped, not retried here, and
		// its partition's next owner runs it again.
		e.log.Info("ordo: job stopped by revocation; the partition's next owner runs it again",
			"kind", job.kind, "job_id", job.id, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", errText{err})
		return actors.Retry(0)
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		e.log.Error("ordo: job panicked", "kind", job.kind, "job_id", job.id, "attempt", attempt,
			"panic", cutReason(fmt.Sprint(pe.Value)), "stack", string(pe.Stack))
	}
	maxAttempts := e.maxAttempts
	if n := w.maxAttempts(); n > 0 {
		maxAttempts = n
	}
	backoff := e.backoff
	if b := w.backoff(); b != (supervision.Backoff{}) {
		backoff = b
	}
	d := supervision.Decide(attempt, maxAttempts, err, backoff)
	e.tally.Failure(r, job.kind, job.id, job.attempt, err.Error(), d.DeadLetter)
	if d.DeadLetter {
		return e.deadLetter(ctx, r, attempt, job.kind, d.Reason, hold)
	}
	e.metrics.jobRetried(job.kind)
	e.tally.Retried(job.kind)
	e.log.Warn("ordo: job failed; will retry", "kind", job.kind, "job_id", job.id,
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
		"attempt", attempt, "max_attempts", maxAttempts, "retry_in", d.Delay, "err", errText{err})
	return actors.Retry(d.Delay)
}

// deadLetter hands the record to the dead-letter writer and holds its key
// until the broker has the dead letter; only then does it count as
// finished.
func (e *executor) deadLetter(ctx context.Context, r *kafka.Record, attempt int, kind, reason string, hold holdFunc) actors.Outcome {
	out, release := hold(ctx)
	e.deadLetters.write(r, attempt, kind, reason, release)
	return out
}

// holdFunc holds the record being dead-lettered: actors.Hold for a job run
// alone, actors.HoldBatch for one of a batch.
type holdFunc func(ctx context.Context) (actors.Outcome, actors.Release)

var single holdFunc = actors.Hold

// jobInfo is a decoded job before its args are: what a typed worker needs to
// build its Job.
type jobInfo struct {
	kind, id   string
	enqueuedAt time.Time
	attempt    int
	metadata   map[string]string
	args       []byte
}
