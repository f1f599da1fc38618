package jobs

import (
	"context"
	"errors"
	"slices"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/kafka"
)

// RawJob is a job as middleware sees it: bytes, not typed args. Its Headers
// and Args belong to the middleware, which may change them in place or
// replace them: on enqueue they become the record's, and in a run they are
// copies, so the record itself (which a retry and a dead letter use) stays
// as it was read.
type RawJob struct {
	// Kind and ID name the job; changing them changes nothing.
	Kind string
	ID   string
	// Headers are the record's headers, ordo's own (HeaderKind,
	// HeaderJobID, ...) among them; leave those as they are. Middleware
	// may change the others or append to them.
	Headers []Header
	// Args are the msgpack-encoded args. Middleware may replace them (e.g.
	// encrypted) but on enqueue they must stay one msgpack value, since the
	// envelope embeds them: wrap other bytes as msgpack bin, e.g. with
	// msgpack.Marshal(ciphertext). In a run, what the last Work phase
	// leaves is what the worker decodes into Job.Args.
	Args []byte
}

// Middleware wraps the jobs of an enqueue call and the runs of jobs, with one
// value for both phases: a middleware that must act on both sides, such as
// payload encryption or tracing, is registered once. Embed
// MiddlewareDefaults to implement one phase only.
//
// Configure it in Config.Middleware (every run of the server's jobs, and the
// periodic jobs it enqueues) and ClientConfig.Middleware (every job the
// client enqueues); a worker adds its own with an optional method
// Middleware() []Middleware, which only the Work phase uses (an enqueue does
// not know its worker). The order is a fixed nesting: the configured
// middleware first, the first entry outermost, then the worker's, in slice
// order; each runs its code before next in that order and its code after
// next in the reverse one. With Config.Middleware [A, B] and a worker's
// [C], a run is A, B, C, Work, then the rest of C, B, A.
//
//	type Audit struct{ jobs.MiddlewareDefaults }
//
//	func (Audit) Work(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
//		err := next(ctx)
//		log.Printf("ran %s %s: %v", js[0].Kind, js[0].ID, err)
//		return err
//	}
type Middleware interface {
	// Enqueue wraps one Enqueue / EnqueueMany / EnqueueAsync call: jobs
	// are the jobs of that call, in order. Change their headers and args
	// in place, then call next, which writes the records (for
	// EnqueueAsync, hands them to the producer: the outcome goes to the
	// call's done). An error fails the enqueue: the caller gets it
	// wrapped, for errors.Is, and nothing is written unless next was
	// called. A middleware that returns nil without calling next fails
	// the enqueue too, since nothing was written.
	Enqueue(ctx context.Context, jobs []*RawJob, next func(context.Context) error) error
	// Work wraps one run: jobs holds the one job of a run, or the jobs of
	// a BatchWorker's batch, in order. Changes to their Headers and Args
	// are what the worker decodes and sees (Job.Args, Job.Headers), and
	// the ctx passed to next is the worker's ctx. For a batch, an error
	// the middleware returns itself fails the batch as a whole (see
	// BatchWorker). An
	// error, the middleware's own or the worker's passed on, is the run's:
	// retried with backoff and dead-lettered when attempts run out. A
	// middleware that returns nil without calling next finishes the job
	// without running it. The worker's Timeout bounds the whole chain, and
	// a panic in it is a *PanicError like a worker's.
	Work(ctx context.Context, jobs []*RawJob, next func(context.Context) error) error
}

// MiddlewareDefaults passes both phases through; embed it to implement only
// one.
//
//	type Tenant struct{ jobs.MiddlewareDefaults }
//
//	func (Tenant) Enqueue(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
//		for _, j := range js {
//			j.Headers = append(j.Headers, jobs.Header{Key: "tenant", Value: []byte(tenantOf(ctx))})
//		}
//		return next(ctx)
//	}
type MiddlewareDefaults struct{}

// Enqueue calls next.
func (MiddlewareDefaults) Enqueue(ctx context.Context, _ []*RawJob, next func(context.Context) error) error {
	return next(ctx)
}

// Work calls next.
func (MiddlewareDefaults) Work(ctx context.Context, _ []*RawJob, next func(context.Context) error) error {
	return next(ctx)
}

// workerMiddleware is the optional method of a worker that brings Work
// middleware of its own.
type workerMiddleware interface {
	Middleware() []Middleware
}

// runWork runs inner inside the Work phase of mws, mws[0] outermost.
func runWork(ctx context.Context, mws []Middleware, jobs []*RawJob, inner func(context.Context) error) error {
	return runPhase(ctx, mws, jobs, inner, Middleware.Work)
}

// runEnqueue runs inner inside the Enqueue phase of mws, mws[0] outermost.
func runEnqueue(ctx context.Context, mws []Middleware, jobs []*RawJob, inner func(context.Context) error) error {
	return runPhase(ctx, mws, jobs, inner, Middleware.Enqueue)
}

func runPhase(ctx context.Context, mws []Middleware, jobs []*RawJob, inner func(context.Context) error,
	phase func(Middleware, context.Context, []*RawJob, func(context.Context) error) error) error {
	if len(mws) == 0 {
		return inner(ctx)
	}
	next := inner
	if len(mws) > 1 {
		next = func(ctx context.Context) error { return runPhase(ctx, mws[1:], jobs, inner, phase) }
	}
	return phase(mws[0], ctx, jobs, next)
}

// middlewareError checks a Middleware setting.
func middlewareError(mws []Middleware) error {
	for i, m := range mws {
		if m == nil {
			return &elementError{i, errors.New("is nil")}
		}
	}
	return nil
}

// workMiddleware returns the Work middleware of each kind that has any: the
// server's, then the worker's. Nil when no kind has any, so that a run
// costs one length check.
func workMiddleware(server []Middleware, ws *Workers) map[string]executor.Middleware {
	var byKind map[string]executor.Middleware
	for _, kind := range executor.Kinds(ws) {
		own, _ := executor.MiddlewareOf(ws, kind).(chain)
		if mws := slices.Concat(server, own); len(mws) > 0 {
			if byKind == nil {
				byKind = map[string]executor.Middleware{}
			}
			byKind[kind] = chain(mws)
		}
	}
	return byKind
}

// chain is a kind's Work middleware as the executor runs it around the
// kind's worker, chain[0] outermost.
type chain []Middleware

// Run runs w on job inside the chain. The middleware gets copies of the
// record's headers and the job's args; what it leaves is what the worker
// sees.
func (c chain) Run(ctx context.Context, w executor.Worker, job executor.Job, r *kafka.Record) error {
	run := &middlewareRun{w: w, job: job, seen: *r}
	run.raw = RawJob{Kind: job.Kind, ID: job.ID, Headers: slices.Clone(r.Headers), Args: slices.Clone(job.Args)}
	run.jobs[0] = &run.raw
	return runWork(ctx, c, run.jobs[:], run.work)
}

// middlewareRun is one run through Work middleware, in one allocation.
type middlewareRun struct {
	w    executor.Worker
	job  executor.Job
	seen kafka.Record // the record as the worker sees it: with the middleware's headers
	raw  RawJob
	jobs [1]*RawJob
}

func (run *middlewareRun) work(ctx context.Context) error {
	run.job.Args, run.seen.Headers = run.raw.Args, run.raw.Headers
	return run.w.Run(ctx, run.job, &run.seen)
}

// RunBatch runs w on a batch inside the chain, which gets the batch's jobs,
// in order, as copies, as in Run.
func (c chain) RunBatch(ctx context.Context, w executor.BatchWorker, infos []executor.Job, recs []*kafka.Record) (decoded int, decodeErr, err error) {
	raws := make([]RawJob, len(infos))
	ptrs := make([]*RawJob, len(infos))
	for i, info := range infos {
		raws[i] = RawJob{Kind: info.Kind, ID: info.ID, Headers: slices.Clone(recs[i].Headers), Args: slices.Clone(info.Args)}
		ptrs[i] = &raws[i]
	}
	decoded = len(infos)
	err = runWork(ctx, c, ptrs, func(ctx context.Context) error {
		seen := make([]kafka.Record, len(recs))
		seenPtrs := make([]*kafka.Record, len(recs))
		changed := slices.Clone(infos)
		for i := range recs {
			seen[i] = *recs[i]
			seen[i].Headers = raws[i].Headers
			changed[i].Args = raws[i].Args
			seenPtrs[i] = &seen[i]
		}
		var werr error
		decoded, decodeErr, werr = w.WorkBatch(ctx, changed, seenPtrs)
		return werr
	})
	return decoded, decodeErr, err
}

// enqueueChain is the Enqueue phase of mws as package enqueue runs it, mws[0]
// outermost; nil without middleware, so that an enqueue costs one nil check.
func enqueueChain(mws []Middleware) enqueue.Chain {
	if len(mws) == 0 {
		return nil
	}
	mws = slices.Clone(mws)
	return func(ctx context.Context, drafts []enqueue.Draft, next func(context.Context) error) error {
		raws := make([]RawJob, len(drafts))
		ptrs := make([]*RawJob, len(drafts))
		for i := range drafts {
			raws[i] = RawJob(drafts[i].Raw())
			ptrs[i] = &raws[i]
		}
		return runEnqueue(ctx, mws, ptrs, func(ctx context.Context) error {
			for i := range drafts {
				drafts[i].SetRaw(enqueue.Raw(raws[i]))
			}
			return next(ctx)
		})
	}
}
