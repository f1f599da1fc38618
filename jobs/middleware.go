package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"

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

// errNextNotCalled fails an enqueue whose middleware returned without
// writing the jobs.
var errNextNotCalled = errors.New("an Enqueue middleware returned without calling next: nothing was written")

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
	for _, kind := range ws.Kinds() {
		own, _ := ws.Middleware(kind).(chain)
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

// produceJobs writes the records of jobs with producer and waits for them,
// through the Enqueue phase of mws when there are any; p, when set, writes
// the trace context of the ctx that reaches the write into each record.
// Without middleware it allocates nothing beyond the records.
func produceJobs(ctx context.Context, mws []Middleware, p propagation.TextMapPropagator, producer *kafka.Producer, jobs []jobDraft) ([]kafka.Delivery, error) {
	if len(mws) > 0 {
		return produceThrough(ctx, mws, p, producer, slices.Clone(jobs))
	}
	msgs, err := records(ctx, p, jobs)
	if err != nil {
		return nil, err
	}
	return producer.ProduceSync(ctx, msgs...)
}

func produceThrough(ctx context.Context, mws []Middleware, p propagation.TextMapPropagator, producer *kafka.Producer, jobs []jobDraft) ([]kafka.Delivery, error) {
	var ds []kafka.Delivery
	err := enqueueThrough(ctx, mws, p, jobs, func(ctx context.Context, msgs []kafka.Message) (err error) {
		ds, err = producer.ProduceSync(ctx, msgs...)
		return err
	})
	return ds, err
}

// enqueueThrough runs the Enqueue phase of mws around write, which gets the
// jobs' records built from what the middleware left.
func enqueueThrough(ctx context.Context, mws []Middleware, p propagation.TextMapPropagator, jobs []jobDraft,
	write func(context.Context, []kafka.Message) error) error {
	raws := make([]RawJob, len(jobs))
	ptrs := make([]*RawJob, len(jobs))
	for i := range jobs {
		raws[i] = RawJob{Kind: jobs[i].env.Kind, ID: jobs[i].env.ID, Headers: jobs[i].msg.Headers, Args: jobs[i].env.Args}
		ptrs[i] = &raws[i]
	}
	written := false
	err := runEnqueue(ctx, mws, ptrs, func(ctx context.Context) error {
		written = true
		for i := range jobs {
			jobs[i].msg.Headers, jobs[i].env.Args = raws[i].Headers, raws[i].Args
		}
		msgs, err := records(ctx, p, jobs)
		if err != nil {
			return fmt.Errorf("after the Enqueue middleware: %w", err)
		}
		return write(ctx, msgs)
	})
	if err == nil && !written {
		err = errNextNotCalled
	}
	return err
}

// enqueueAsyncThrough is EnqueueAsync through the client's middleware. Once
// next has handed the job to the producer, done waits for both the chain
// and the delivery, in either order, and gets the chain's error if it
// returned one, else the delivery's outcome.
func (c *Client) enqueueAsyncThrough(ctx context.Context, args JobArgs, done func(JobInfo, error), opts []EnqueueOption) {
	d, err := draft(c.topic, args, opts, time.Now().UTC(), c.schedules.lookup(ctx))
	if err != nil {
		c.failAsync(done, JobInfo{}, enqueueError(err, ""))
		return
	}
	info := d.info
	out := &asyncOutcome{report: deliver(info, done)}
	handed := false
	err = enqueueThrough(ctx, c.middleware, c.propagator, []jobDraft{d}, func(ctx context.Context, msgs []kafka.Message) error {
		if handed {
			return errors.New("an Enqueue middleware called next twice in EnqueueAsync: the job was written once")
		}
		handed = true
		c.producer.ProduceAsync(ctx, msgs[0], out.delivered)
		return nil
	})
	if !handed {
		c.failAsync(done, info, fmt.Errorf("jobs: enqueue %s job %s: %w", info.Kind, info.ID, err))
		return
	}
	if out.chainReturned(err) {
		go func() {
			defer c.calls.Done()
			out.done()
		}()
		return
	}
	c.calls.Done()
}

// asyncOutcome is an EnqueueAsync job's outcome through middleware: its two
// halves, the chain's error and the producer's delivery, come in either
// order.
type asyncOutcome struct {
	halves   atomic.Int32
	chainErr error
	delivery kafka.Delivery
	err      error
	report   func(kafka.Delivery, error)
}

// chainReturned takes the chain's error and says whether the delivery came
// first, so that the caller reports it.
func (o *asyncOutcome) chainReturned(err error) (last bool) {
	o.chainErr = err
	return o.halves.Add(1) == 2
}

func (o *asyncOutcome) delivered(d kafka.Delivery, err error) {
	o.delivery, o.err = d, err
	if o.halves.Add(1) == 2 {
		o.done()
	}
}

func (o *asyncOutcome) done() {
	if o.chainErr != nil {
		o.report(kafka.Delivery{Partition: -1, Offset: -1}, o.chainErr)
		return
	}
	o.report(o.delivery, o.err)
}

// records encodes the jobs' records, with the trace context of ctx when p
// is set. Its error wraps ErrInvalidEnqueue: the record would not decode.
func records(ctx context.Context, p propagation.TextMapPropagator, jobs []jobDraft) ([]kafka.Message, error) {
	msgs := make([]kafka.Message, len(jobs))
	for i := range jobs {
		var err error
		if msgs[i], err = jobs[i].record(); err != nil {
			return nil, fmt.Errorf("%w: %s job %s: %w", ErrInvalidEnqueue, jobs[i].env.Kind, jobs[i].env.ID, err)
		}
		inject(ctx, p, &msgs[i])
	}
	return msgs, nil
}
