// Package middleware runs the user's middleware (jobs.Middleware) around a
// run and an enqueue: it nests the phases, the first outermost, and for a
// run builds the raw jobs the middleware sees, as copies, and hands what
// the middleware left to the worker. Package jobs adapts each Middleware's
// Work or Enqueue method to a Phase over jobs.RawJob; the executor runs a
// kind's Work, and package enqueue runs the Enqueue phases over its drafts.
package middleware

import (
	"context"
	"slices"

	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/kafka"
)

// Raw is a job as middleware sees it: jobs.RawJob, field for field.
type Raw struct {
	Kind    string
	ID      string
	Headers []kafka.Header
	Args    []byte
}

// Job is the type the user's middleware is given, jobs.RawJob, which
// converts to and from Raw; the phases take it so that jobs need not copy
// the raw jobs into a slice of its own.
type Job interface {
	~struct {
		Kind    string
		ID      string
		Headers []kafka.Header
		Args    []byte
	}
}

// Phase is one middleware's Work or Enqueue method.
type Phase[R Job] func(ctx context.Context, jobs []*R, next func(context.Context) error) error

// Nest runs inner inside phases, phases[0] outermost.
func Nest[R Job](ctx context.Context, phases []Phase[R], jobs []*R, inner func(context.Context) error) error {
	if len(phases) == 0 {
		return inner(ctx)
	}
	next := inner
	if len(phases) > 1 {
		next = func(ctx context.Context) error { return Nest(ctx, phases[1:], jobs, inner) }
	}
	return phases[0](ctx, jobs, next)
}

// Work is a kind's Work phases as the executor runs them around the kind's
// worker (an executor.Middleware), Work[0] outermost.
type Work[R Job] []Phase[R]

// Run runs w on job inside the phases. They get copies of the record's
// headers and the job's args; what they leave is what the worker sees.
func (c Work[R]) Run(ctx context.Context, w executor.Worker, job executor.Job, r *kafka.Record) error {
	run := &oneRun[R]{w: w, job: job, seen: *r}
	run.raw = R(Raw{Kind: job.Kind, ID: job.ID, Headers: slices.Clone(r.Headers), Args: slices.Clone(job.Args)})
	run.jobs[0] = &run.raw
	return Nest(ctx, c, run.jobs[:], run.work)
}

// oneRun is one run through Work middleware, in one allocation.
type oneRun[R Job] struct {
	w    executor.Worker
	job  executor.Job
	seen kafka.Record // the record as the worker sees it: with the middleware's headers
	raw  R
	jobs [1]*R
}

func (run *oneRun[R]) work(ctx context.Context) error {
	raw := Raw(run.raw)
	run.job.Args, run.seen.Headers = raw.Args, raw.Headers
	return run.w.Run(ctx, run.job, &run.seen)
}

// RunBatch runs w on a batch inside the phases, which get the batch's jobs,
// in order, as copies, as in Run.
func (c Work[R]) RunBatch(ctx context.Context, w executor.BatchWorker, infos []executor.Job, recs []*kafka.Record) (decoded int, decodeErr, err error) {
	raws := make([]R, len(infos))
	ptrs := make([]*R, len(infos))
	for i, info := range infos {
		raws[i] = R(Raw{Kind: info.Kind, ID: info.ID, Headers: slices.Clone(recs[i].Headers), Args: slices.Clone(info.Args)})
		ptrs[i] = &raws[i]
	}
	decoded = len(infos)
	err = Nest(ctx, c, ptrs, func(ctx context.Context) error {
		seen := make([]kafka.Record, len(recs))
		seenPtrs := make([]*kafka.Record, len(recs))
		changed := slices.Clone(infos)
		for i := range recs {
			raw := Raw(raws[i])
			seen[i] = *recs[i]
			seen[i].Headers = raw.Headers
			changed[i].Args = raw.Args
			seenPtrs[i] = &seen[i]
		}
		var werr error
		decoded, decodeErr, werr = w.WorkBatch(ctx, changed, seenPtrs)
		return werr
	})
	return decoded, decodeErr, err
}
