package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/jobs/jobstest"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// callLog is what middleware and workers did, in order.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(call string) {
	l.mu.Lock()
	l.calls = append(l.calls, call)
	l.mu.Unlock()
}

func (l *callLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// take returns the calls so far and forgets them.
func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	calls := l.calls
	l.calls = nil
	return calls
}

// recorder is a middleware that logs each phase before and after next and
// marks what it saw: a header per phase on each job, and its name on the
// path in the ctx it passes on.
type recorder struct {
	name string
	log  *callLog
}

type pathKey struct{}

func pathOf(ctx context.Context) string { s, _ := ctx.Value(pathKey{}).(string); return s }

func (m recorder) Enqueue(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	m.log.add(fmt.Sprintf("%s enqueue %d >", m.name, len(js)))
	for _, j := range js {
		j.Headers = append(j.Headers, jobs.Header{Key: "enqueued-via", Value: []byte(m.name)})
	}
	err := next(ctx)
	m.log.add(m.name + " enqueue <")
	return err
}

func (m recorder) Work(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	m.log.add(fmt.Sprintf("%s work %d >", m.name, len(js)))
	js[0].Headers = append(js[0].Headers, jobs.Header{Key: "worked-via", Value: []byte(m.name)})
	err := next(context.WithValue(ctx, pathKey{}, pathOf(ctx)+m.name))
	m.log.add(m.name + " work <")
	return err
}

// headerValues returns the values of every header named key, in order.
func headerValues(headers []jobs.Header, key string) string {
	var vs []string
	for _, h := range headers {
		if h.Key == key {
			vs = append(vs, string(h.Value))
		}
	}
	return strings.Join(vs, ",")
}

type mwArgs struct {
	Key  string `msgpack:"key"`
	Note string `msgpack:"note"`
}

func (mwArgs) Kind() string                      { return "mw" }
func (a mwArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// ownMiddlewareWorker brings middleware of its own.
type ownMiddlewareWorker struct {
	jobs.WorkerDefaults[mwArgs]
	own  []jobs.Middleware
	log  *callLog
	seen func(ctx context.Context, job *jobs.Job[mwArgs])
}

func (w *ownMiddlewareWorker) Middleware() []jobs.Middleware { return w.own }

func (w *ownMiddlewareWorker) Work(ctx context.Context, job *jobs.Job[mwArgs]) error {
	w.log.add("work")
	w.seen(ctx, job)
	return nil
}

func TestMiddlewareRunsInTheDocumentedOrderOnBothSides(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	log := &callLog{}
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Logger: testLogger(t),
		Middleware: []jobs.Middleware{recorder{"A", log}, recorder{"B", log}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	enqueueOrder := func(n int) []string {
		return []string{fmt.Sprintf("A enqueue %d >", n), fmt.Sprintf("B enqueue %d >", n), "B enqueue <", "A enqueue <"}
	}

	if _, err := client.Enqueue(ctx, mwArgs{Key: "k", Note: "one"}); err != nil {
		t.Fatal(err)
	}
	if got, want := log.take(), enqueueOrder(1); !slices.Equal(got, want) {
		t.Errorf("Enqueue ran %q, want %q", got, want)
	}
	if _, err := client.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: mwArgs{Key: "k", Note: "two"}}, {Args: mwArgs{Key: "k", Note: "three"}}}); err != nil {
		t.Fatal(err)
	}
	if got, want := log.take(), enqueueOrder(2); !slices.Equal(got, want) {
		t.Errorf("EnqueueMany ran %q, want %q", got, want)
	}
	asyncErr := make(chan error, 1)
	client.EnqueueAsync(ctx, mwArgs{Key: "k", Note: "four"}, func(_ jobs.JobInfo, err error) { asyncErr <- err })
	if err := <-asyncErr; err != nil {
		t.Fatal(err)
	}
	if got, want := log.take(), enqueueOrder(1); !slices.Equal(got, want) {
		t.Errorf("EnqueueAsync ran %q, want %q", got, want)
	}
	for _, r := range env.ReadAll(t, topic) {
		if got := headerValues(r.Headers, "enqueued-via"); got != "A,B" {
			t.Errorf("record %d carries enqueued-via %q, want the headers A then B added: \"A,B\"", r.Offset, got)
		}
	}

	var mu sync.Mutex
	var seen []string // per job: note, headers added, ctx path
	ws := jobs.NewWorkers()
	mustAdd(t, ws, &ownMiddlewareWorker{own: []jobs.Middleware{recorder{"E", log}}, log: log,
		seen: func(ctx context.Context, job *jobs.Job[mwArgs]) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s enqueued-via=%s worked-via=%s path=%s", job.Args.Note,
				headerValues(job.Headers, "enqueued-via"), headerValues(job.Headers, "worked-via"), pathOf(ctx)))
		}})
	cfg := serverConfig(t, env, topic, ws)
	cfg.Middleware = []jobs.Middleware{recorder{"C", log}, recorder{"D", log}}
	startJobServer(t, cfg)
	// The jobs share a key, so their runs do not interleave.
	run := []string{"C work 1 >", "D work 1 >", "E work 1 >", "work", "E work <", "D work <", "C work <"}
	kafkatest.WaitFor(t, time.Minute, "the 4 jobs to run", func() bool { return log.len() >= 4*len(run) })
	if got, want := log.take(), slices.Concat(run, run, run, run); !slices.Equal(got, want) {
		t.Errorf("the runs went\n%q\nwant, per run,\n%q", got, run)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, note := range []string{"one", "two", "three", "four"} {
		if want := note + " enqueued-via=A,B worked-via=C,D,E path=CDE"; seen[i] != want {
			t.Errorf("worker saw %q, want %q", seen[i], want)
		}
	}
}

// refuse is a middleware whose Enqueue phase fails.
type refuse struct {
	jobs.MiddlewareDefaults
	enqueue func(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error
}

func (m refuse) Enqueue(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	return m.enqueue(ctx, js, next)
}

func TestAnEnqueueMiddlewareErrorFailsTheEnqueue(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	errRefused := errors.New("tenant over quota")
	for _, c := range []struct {
		name string
		mw   func(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error
		// is says what the error wraps; written, whether the jobs
		// reached the topic anyway.
		is      error
		mention string
		written bool
	}{
		{name: "an error before next", is: errRefused, mw: func(context.Context, []*jobs.RawJob, func(context.Context) error) error {
			return errRefused
		}},
		{name: "no call to next", mention: "without calling next", mw: func(context.Context, []*jobs.RawJob, func(context.Context) error) error {
			return nil
		}},
		{name: "args that are not msgpack", is: jobs.ErrInvalidEnqueue, mw: func(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
			for _, j := range js {
				j.Args = []byte("plain bytes, not one msgpack value")
			}
			return next(ctx)
		}},
		{name: "an error after next", is: errRefused, written: true, mw: func(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
			if err := next(ctx); err != nil {
				return err
			}
			return errRefused
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			topic := env.Topic(t, 2)
			client, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Logger: testLogger(t),
				Middleware: []jobs.Middleware{jobs.MiddlewareDefaults{}, refuse{enqueue: c.mw}}})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			check := func(call string, err error) {
				t.Helper()
				switch {
				case err == nil:
					t.Errorf("%s succeeded", call)
				case c.is != nil && !errors.Is(err, c.is):
					t.Errorf("%s: %v does not wrap %v", call, err, c.is)
				case !strings.Contains(err.Error(), c.mention):
					t.Errorf("%s: %v does not say %q", call, err, c.mention)
				}
			}
			ctx := context.Background()
			info, err := client.Enqueue(ctx, mwArgs{Key: "k"})
			check("Enqueue", err)
			if info.ID == "" || info.Partition != -1 {
				t.Errorf("Enqueue's JobInfo %+v does not name the job, unwritten", info)
			}
			_, err = client.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: mwArgs{Key: "k"}}, {Args: mwArgs{Key: "l"}}})
			check("EnqueueMany", err)
			var calls atomic.Int64
			asyncErr := make(chan error, 2)
			client.EnqueueAsync(ctx, mwArgs{Key: "k"}, func(_ jobs.JobInfo, err error) {
				calls.Add(1)
				asyncErr <- err
			})
			check("EnqueueAsync", <-asyncErr)
			if err := client.Close(); err != nil { // waits for every done
				t.Fatal(err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("EnqueueAsync's done ran %d times, want once", n)
			}

			end, err := env.Admin.EndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			var records int64
			for _, n := range end {
				records += n
			}
			if want := map[bool]int64{false: 0, true: 4}[c.written]; records != want {
				t.Errorf("the topic holds %d records, want %d", records, want)
			}
		})
	}
}

// flaky is a Work middleware that fails the jobs whose "fail" header says
// so, after scribbling over their args and headers, which must not reach
// the record.
type flaky struct {
	jobs.MiddlewareDefaults
	mu    sync.Mutex
	calls map[string]int // by the "fail" header
}

var errTenantUnknown = errors.New("tenant unknown")

func (m *flaky) Work(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	j := js[0]
	mode := headerValues(j.Headers, "fail")
	m.mu.Lock()
	m.calls[mode]++
	n := m.calls[mode]
	m.mu.Unlock()
	if mode == "always" || (mode == "twice" && n <= 2) {
		clear(j.Args)
		j.Headers[0].Value = []byte("scribbled")
		j.Headers = append(j.Headers, jobs.Header{Key: "scribbled", Value: []byte("yes")})
		return errTenantUnknown
	}
	return next(ctx)
}

func (m *flaky) callsOf(mode string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[mode]
}

func TestAWorkMiddlewareErrorIsRetriedThenDeadLetteredWithItsReason(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	dlqTopic := env.Topic(t, 1)
	client := newClient(t, env, topic)
	ctx := context.Background()
	for _, mode := range []string{"always", "twice"} {
		if _, err := client.Enqueue(ctx, mwArgs{Key: mode, Note: "note of " + mode}, jobs.WithHeaders(map[string]string{"fail": mode})); err != nil {
			t.Fatal(err)
		}
	}
	written := env.ReadAll(t, topic)

	mw := &flaky{calls: map[string]int{}}
	var mu sync.Mutex
	var ran []*jobs.Job[mwArgs]
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[mwArgs]) error {
		mu.Lock()
		ran = append(ran, j)
		mu.Unlock()
		return nil
	}))
	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlqTopic
	cfg.MaxAttempts = 3
	cfg.Backoff = supervision.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}
	cfg.Middleware = []jobs.Middleware{mw}
	startJobServer(t, cfg)
	dead := dlqCollector(t, env, dlqTopic)
	kafkatest.WaitFor(t, time.Minute, "both jobs to finish", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dead())+len(ran) >= 2
	})
	if len(dead()) != 1 || len(ran) != 1 {
		t.Fatalf("%d dead letters and %d runs, want 1 of each", len(dead()), len(ran))
	}

	if n := mw.callsOf("always"); n != 3 {
		t.Errorf("the failing job went through the middleware %d times, want MaxAttempts, 3", n)
	}
	letter := dead()[0]
	if got, want := headerValue(letter, jobs.HeaderError), "attempts exhausted (3 of 3): tenant unknown"; got != want {
		t.Errorf("dead letter's error header %q, want %q", got, want)
	}
	if got := headerValue(letter, jobs.HeaderSourceAttempts); got != "3" {
		t.Errorf("dead letter's attempts header %q, want 3", got)
	}
	// The dead letter is the record as it was read: what the middleware
	// did to its copies stayed with them.
	original := written[slices.IndexFunc(written, func(r kafka.Record) bool { return headerValue(r, "fail") == "always" })]
	if !bytes.Equal(letter.Value, original.Value) {
		t.Errorf("the dead letter's value differs from the job's record: the middleware changed the record")
	}
	if headerValue(letter, "scribbled") != "" || headerValue(letter, jobs.HeaderKind) != "mw" {
		t.Errorf("the dead letter carries the middleware's header changes: %v", letter.Headers)
	}

	// The other job failed twice in the middleware, then ran, on its
	// attempt 3, with its args as enqueued.
	mu.Lock()
	defer mu.Unlock()
	if j := ran[0]; j.Attempt != 3 || j.Args.Note != "note of twice" || headerValues(j.Headers, "scribbled") != "" {
		t.Errorf("the job ran as attempt %d with args %+v and headers %v; want attempt 3, the args as enqueued, no scribbles",
			j.Attempt, j.Args, j.Headers)
	}
}

// nilMiddlewareWorker brings a nil middleware.
type nilMiddlewareWorker struct{ jobs.WorkerDefaults[mwArgs] }

func (nilMiddlewareWorker) Middleware() []jobs.Middleware {
	return []jobs.Middleware{jobs.MiddlewareDefaults{}, nil}
}

func (nilMiddlewareWorker) Work(context.Context, *jobs.Job[mwArgs]) error { return nil }

func TestAddWorkerRefusesANilMiddleware(t *testing.T) {
	err := jobs.AddWorker(jobs.NewWorkers(), jobs.Worker[mwArgs](nilMiddlewareWorker{}))
	if err == nil || !strings.Contains(err.Error(), "Middleware()[1]: is nil") {
		t.Errorf("AddWorker returned %v, want an error naming Middleware()[1]", err)
	}
}

// jobstest runs workers through the server's executor, so a worker's own
// middleware runs there too.
func TestJobstestRunsTheWorkersOwnMiddleware(t *testing.T) {
	log := &callLog{}
	var path string
	w := &ownMiddlewareWorker{own: []jobs.Middleware{recorder{"E", log}}, log: log,
		seen: func(ctx context.Context, job *jobs.Job[mwArgs]) {
			path = pathOf(ctx) + " " + headerValues(job.Headers, "worked-via")
		}}
	if err := jobstest.Work(context.Background(), w, mwArgs{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if got, want := log.take(), []string{"E work 1 >", "work", "E work <"}; !slices.Equal(got, want) || path != "E E" {
		t.Errorf("jobstest.Work ran %q, and the worker saw path and headers %q; want %q and \"E E\"", got, path, want)
	}
}

type mwTickArgs struct{}

func (mwTickArgs) Kind() string { return "mw_tick" }

func TestPeriodicJobsGoThroughTheServersEnqueueMiddleware(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 1, 1)
	log := &callLog{}
	headers := make(chan []jobs.Header, 100)
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[mwTickArgs]) error {
		headers <- j.Headers
		return nil
	}))
	cfg := e.config(t, ws)
	cfg.Middleware = []jobs.Middleware{recorder{"S", log}}
	cfg.Periodic = []jobs.PeriodicJob{jobs.Periodic("@every 1s", mwTickArgs{})}
	startJobServer(t, cfg)
	var hs []jobs.Header
	select {
	case hs = <-headers:
	case <-time.After(time.Minute):
		t.Fatal("no periodic job ran within a minute")
	}
	if got := headerValues(hs, "enqueued-via") + " " + headerValues(hs, "worked-via"); got != "S S" {
		t.Errorf("the periodic job's enqueued-via and worked-via headers are %q, want \"S S\"", got)
	}
}
