package jobs

import (
	"context"
	"slices"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/middleware"
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

// workMiddleware returns the Work middleware of each kind that has any: the
// server's, then the worker's. Nil when no kind has any, so that a run
// costs one length check.
func workMiddleware(server []Middleware, ws *Workers) map[string]executor.Middleware {
	var byKind map[string]executor.Middleware
	for _, kind := range executor.Kinds(ws) {
		own, _ := executor.MiddlewareOf(ws, kind).(middleware.Work[RawJob])
		if c := slices.Concat(workChain(server), own); len(c) > 0 {
			if byKind == nil {
				byKind = map[string]executor.Middleware{}
			}
			byKind[kind] = c
		}
	}
	return byKind
}

// workChain is the Work phase of mws as the executor runs it, mws[0]
// outermost.
func workChain(mws []Middleware) middleware.Work[RawJob] {
	c := make(middleware.Work[RawJob], len(mws))
	for i, m := range mws {
		c[i] = m.Work
	}
	return c
}

// enqueueChain is the Enqueue phase of mws as package enqueue runs it, mws[0]
// outermost; nil without middleware.
func enqueueChain(mws []Middleware) enqueue.Chain {
	phases := make([]middleware.Phase[RawJob], len(mws))
	for i, m := range mws {
		phases[i] = m.Enqueue
	}
	return enqueue.ChainOf(phases)
}
