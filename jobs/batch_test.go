package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/supervision"
)

// bulkArgs is a job worked in batches, in one sequence per key with seqArgs'
// other kinds.
type bulkArgs struct {
	seqArgs
	FailOnce  bool `msgpack:"fail_once"`  // named in BatchErrors on its first run
	BatchOnce bool `msgpack:"batch_once"` // fails its whole batch on its first run
	Poison    bool `msgpack:"poison"`     // always named in BatchErrors
}

func (bulkArgs) Kind() string { return "bulk" }

// bulkWorker logs what finished, and checks every batch it gets.
type bulkWorker struct {
	jobs.BatchWorkerDefaults[bulkArgs]
	t        *testing.T
	log      *seqLog
	max      int
	failed   sync.Map // job ID → already failed once
	attempts sync.Map // seq key → attempts seen
	charged  sync.Map // seq key → whole-batch failures charged to it
	batches  atomic.Int64
	biggest  atomic.Int64
	// jobsHanded sums the batches' sizes.
	jobsHanded atomic.Int64
	partial    atomic.Int64
	whole      atomic.Int64
}

func (w *bulkWorker) MaxBatch() int { return w.max }

func (w *bulkWorker) WorkBatch(ctx context.Context, batch []*jobs.Job[bulkArgs]) error {
	w.batches.Add(1)
	w.jobsHanded.Add(int64(len(batch)))
	if n := int64(len(batch)); n > w.biggest.Load() {
		w.biggest.Store(n)
	}
	if len(batch) > w.max {
		w.t.Errorf("a batch of %d jobs; MaxBatch is %d", len(batch), w.max)
	}
	for i, j := range batch {
		if j.Args.Key != batch[0].Args.Key {
			w.t.Errorf("a batch mixed keys %q and %q", batch[0].Args.Key, j.Args.Key)
		}
		if i > 0 && j.Offset <= batch[i-1].Offset {
			w.t.Errorf("a batch out of offset order: %d after %d", j.Offset, batch[i-1].Offset)
		}
		id := j.Args.Key + "#" + strconv.Itoa(j.Args.Seq)
		prev, _ := w.attempts.Load(id)
		w.attempts.Store(id, append(slicesOf(prev), j.Attempt))
	}
	for _, j := range batch {
		if j.Args.BatchOnce {
			if _, done := w.failed.LoadOrStore(j.ID, true); !done {
				w.whole.Add(1)
				head := batch[0].Args.Key + "#" + strconv.Itoa(batch[0].Args.Seq)
				n, _ := w.charged.LoadOrStore(head, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				return errors.New("the bulk insert failed")
			}
		}
	}
	errs := jobs.BatchErrors{}
	for i, j := range batch {
		if j.Args.Poison {
			errs[i] = errors.New("this row is always refused")
			break
		}
		if j.Args.FailOnce {
			if _, done := w.failed.LoadOrStore(j.ID, true); !done {
				errs[i] = errors.New("this row was refused once")
				break
			}
		}
		w.log.run(j.Args.seqArgs, nil)
	}
	if len(errs) > 0 {
		w.partial.Add(1)
	}
	return errs
}

func slicesOf(v any) []int {
	if v == nil {
		return nil
	}
	return v.([]int)
}

// TestBatchWorkerKeepsKeyOrderAcrossRetriesAndPartialFailures: a batch kind
// interleaved with a plain kind in every key's sequence, with batches that
// fail whole or from an index on: every job finishes once, each key in
// enqueue order across both kinds, no batch mixes keys, and only the job
// named is charged.
func TestBatchWorkerKeepsKeyOrderAcrossRetriesAndPartialFailures(t *testing.T) {
	t.Parallel()
	const total, keys = 6000, 60
	env := kafkatest.New(t)
	topic := env.Topic(t, 4)
	log := newSeqLog()
	w := &bulkWorker{t: t, log: log, max: 16}
	ws := jobs.NewWorkers()
	if err := jobs.AddBatchWorker(ws, w); err != nil {
		t.Fatal(err)
	}
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindA]) error { log.run(j.Args.seqArgs, nil); return nil }))
	perKey := map[string]int{}
	params := make([]jobs.EnqueueParams, 0, total)
	for i := range total {
		key := "acct-" + strconv.Itoa(i%keys)
		a := seqArgs{Key: key, Seq: perKey[key]}
		perKey[key]++
		var args jobs.JobArgs = bulkArgs{seqArgs: a, FailOnce: i%37 == 5, BatchOnce: i%53 == 11 && i%37 != 5}
		if i%11 == 3 {
			args = kindA{a}
		}
		params = append(params, jobs.EnqueueParams{Args: args})
	}
	ctx := context.Background()
	if _, err := newClient(t, env, topic).EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.Backoff = supervision.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	reg := prometheus.NewRegistry()
	metrics, err := jobs.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = metrics
	s := startJobServer(t, cfg)
	kafkatest.WaitFor(t, 2*time.Minute, "every job to finish", func() bool { return log.runs.Load() >= total })
	waitCommittedToEnd(t, env, topic, cfg.Group)
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	log.check(t, perKey)
	if w.partial.Load() == 0 || w.whole.Load() == 0 {
		t.Fatalf("partial failures %d, whole failures %d: the test needs both", w.partial.Load(), w.whole.Load())
	}
	if w.biggest.Load() < 2 {
		t.Errorf("no batch held more than one job")
	}
	// A job named in BatchErrors is charged, and a batch's first job for
	// the batch's error; the jobs behind them are not.
	for i := range total {
		b, ok := params[i].Args.(bulkArgs)
		if !ok {
			continue
		}
		id := b.Key + "#" + strconv.Itoa(b.Seq)
		v, _ := w.attempts.Load(id)
		seen := slicesOf(v)
		want := 1
		if b.FailOnce {
			want++
		}
		if n, ok := w.charged.Load(id); ok {
			want += int(n.(*atomic.Int64).Load())
		}
		if got := slices.Max(seen); got != want {
			t.Errorf("job %s ran as attempts %v; want %d at most", id, seen, want)
		}
	}
	// The batch-size histogram saw every call, with the jobs it held.
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var calls uint64
	var jobsInCalls float64
	for _, f := range fams {
		if f.GetName() == "ordo_job_batch_size" {
			for _, m := range f.GetMetric() {
				calls += m.GetHistogram().GetSampleCount()
				jobsInCalls += m.GetHistogram().GetSampleSum()
			}
		}
	}
	if calls != uint64(w.batches.Load()) || jobsInCalls != float64(w.jobsHanded.Load()) {
		t.Errorf("ordo_job_batch_size counted %d calls of %v jobs; WorkBatch got %d calls of %d jobs",
			calls, jobsInCalls, w.batches.Load(), w.jobsHanded.Load())
	}
	t.Logf("%d batches, the biggest of %d jobs; %d partial and %d whole failures",
		w.batches.Load(), w.biggest.Load(), w.partial.Load(), w.whole.Load())
}

// TestABatchJobThatRunsOutOfAttemptsIsDeadLetteredAlone: the job a batch
// keeps refusing goes to the dead-letter topic with its reason after its
// attempts, and its key's other jobs finish, in order, uncharged.
func TestABatchJobThatRunsOutOfAttemptsIsDeadLetteredAlone(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, dlqTopic := env.Topic(t, 1), env.Topic(t, 1)
	log := newSeqLog()
	w := &bulkWorker{t: t, log: log, max: 100}
	ws := jobs.NewWorkers()
	if err := jobs.AddBatchWorker(ws, w); err != nil {
		t.Fatal(err)
	}
	var params []jobs.EnqueueParams
	for i := range 10 {
		params = append(params, jobs.EnqueueParams{Args: bulkArgs{seqArgs: seqArgs{Key: "a", Seq: i}, Poison: i == 4}})
	}
	ctx := context.Background()
	if _, err := newClient(t, env, topic).EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlqTopic
	cfg.MaxAttempts = 3
	cfg.Backoff = supervision.Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond}
	startJobServer(t, cfg)
	dead := dlqCollector(t, env, dlqTopic)
	kafkatest.WaitFor(t, time.Minute, "9 jobs to finish and one dead letter", func() bool {
		return log.runs.Load() == 9 && len(dead()) == 1
	})
	waitCommittedToEnd(t, env, topic, cfg.Group)
	log.mu.Lock()
	got := log.byKey["a"]
	log.mu.Unlock()
	if !slices.Equal(got, []int{0, 1, 2, 3, 5, 6, 7, 8, 9}) {
		t.Errorf("key a finished %v; want every job but the refused one, in order", got)
	}
	d := dead()[0]
	if a := headerOf(d, jobs.HeaderSourceAttempts); a != "3" {
		t.Errorf("the dead letter says %s attempts, want 3", a)
	}
	if e := headerOf(d, jobs.HeaderError); !strings.Contains(e, "attempts exhausted") || !strings.Contains(e, "always refused") {
		t.Errorf("the dead letter's reason is %q", e)
	}
	if off := headerOf(d, jobs.HeaderSourceOffset); off != "4" {
		t.Errorf("the dead letter is offset %s, want 4", off)
	}
	for seq := range 10 {
		v, _ := w.attempts.Load("a#" + strconv.Itoa(seq))
		seen := slicesOf(v)
		want := 1
		if seq == 4 {
			want = 3
		}
		if slices.Max(seen) != want {
			t.Errorf("job a#%d ran as attempts %v; want at most %d", seq, seen, want)
		}
	}
}

// gatedBulk blocks its first batch until its context ends, then fails it:
// a batch in flight that a shutdown gives up on.
type gatedBulk struct {
	jobs.BatchWorkerDefaults[bulkArgs]
	mu      sync.Mutex
	runs    map[int][]string // seq → the servers that ran it
	name    string
	started chan []int
	once    sync.Once
}

func (g *gatedBulk) WorkBatch(ctx context.Context, batch []*jobs.Job[bulkArgs]) error {
	g.mu.Lock()
	var seqs []int
	for _, j := range batch {
		g.runs[j.Args.Seq] = append(g.runs[j.Args.Seq], g.name)
		seqs = append(seqs, j.Args.Seq)
	}
	name := g.name
	g.mu.Unlock()
	if name == "first" {
		first := false
		g.once.Do(func() { first = true })
		if first {
			g.started <- seqs
			<-ctx.Done()
			return ctx.Err()
		}
	}
	return nil
}

// TestARevokedBatchInFlightIsTheOnlyWorkThatRunsTwice: a member that stops
// with a batch in flight that outlives its shutdown timeout commits nothing
// of it and drops what its key queued behind it; the next member runs the
// batch again and everything else once.
func TestARevokedBatchInFlightIsTheOnlyWorkThatRunsTwice(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	g := &gatedBulk{runs: map[int][]string{}, name: "first", started: make(chan []int, 1)}
	ws := jobs.NewWorkers()
	if err := jobs.AddBatchWorker(ws, g); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := newClient(t, env, topic)
	var params []jobs.EnqueueParams
	for i := range 5 {
		params = append(params, jobs.EnqueueParams{Args: bulkArgs{seqArgs: seqArgs{Key: "a", Seq: i}}})
	}
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.ShutdownTimeout = 300 * time.Millisecond
	first := startJobServer(t, cfg)
	var inFlight []int
	select {
	case inFlight = <-g.started:
	case <-time.After(time.Minute):
		t.Fatal("no batch started")
	}
	// Jobs that queue behind the batch in flight.
	params = params[:0]
	for i := 5; i < 20; i++ {
		params = append(params, jobs.EnqueueParams{Args: bulkArgs{seqArgs: seqArgs{Key: "a", Seq: i}}})
	}
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 30*time.Second, "the new jobs to reach the member", func() bool {
		for _, st := range first.Stats() {
			if st.Buffered == 20 {
				return true
			}
		}
		return false
	})
	if err := first.Stop(ctx); !errors.Is(err, actors.ErrShutdownTimeout) {
		t.Fatalf("Stop: %v; want the shutdown timeout, with the batch in flight", err)
	}
	g.mu.Lock()
	g.name = "second"
	g.mu.Unlock()
	startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "every job to run on the second member", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for seq := range 20 {
			if !slices.Contains(g.runs[seq], "second") {
				return false
			}
		}
		return true
	})
	waitCommittedToEnd(t, env, topic, cfg.Group)
	g.mu.Lock()
	defer g.mu.Unlock()
	var twice []int
	for seq := range 20 {
		if len(g.runs[seq]) > 1 {
			twice = append(twice, seq)
		}
	}
	if !slices.Equal(twice, inFlight) {
		t.Fatalf("jobs %v ran twice; want exactly the batch in flight %v", twice, inFlight)
	}
	t.Logf("the batch in flight %v ran twice; the 15 jobs queued behind it ran once", fmt.Sprint(inFlight))
}

// waitedArgs is a job of a batch worker that waits for its batches to fill.
type waitedArgs struct {
	Key string `msgpack:"key"`
}

func (waitedArgs) Kind() string                      { return "waited" }
func (a waitedArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

type waitingBulk struct {
	jobs.BatchWorkerDefaults[waitedArgs]
	wait    time.Duration
	batches chan []*jobs.Job[waitedArgs]
}

func (w *waitingBulk) MaxBatch() int               { return 3 }
func (w *waitingBulk) MaxBatchWait() time.Duration { return w.wait }
func (w *waitingBulk) WorkBatch(ctx context.Context, batch []*jobs.Job[waitedArgs]) error {
	w.batches <- batch
	return nil
}

// TestMaxBatchWaitFillsBatchesWithinItsBound: a full batch runs at once; a
// batch that does not fill runs once MaxBatchWait has passed, not later.
func TestMaxBatchWaitFillsBatchesWithinItsBound(t *testing.T) {
	t.Parallel()
	const wait = 2 * time.Second
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	w := &waitingBulk{wait: wait, batches: make(chan []*jobs.Job[waitedArgs], 10)}
	ws := jobs.NewWorkers()
	if err := jobs.AddBatchWorker(ws, w); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := newClient(t, env, topic)
	startJobServer(t, serverConfig(t, env, topic, ws))
	next := func() ([]*jobs.Job[waitedArgs], time.Duration) {
		t.Helper()
		select {
		case b := <-w.batches:
			return b, time.Since(b[0].EnqueuedAt)
		case <-time.After(time.Minute):
			t.Fatal("no batch ran")
			return nil, 0
		}
	}
	// Warm up: the group's first fetch takes its own time.
	if _, err := client.Enqueue(ctx, waitedArgs{Key: "warm"}); err != nil {
		t.Fatal(err)
	}
	next()

	three := []jobs.EnqueueParams{{Args: waitedArgs{Key: "a"}}, {Args: waitedArgs{Key: "a"}}, {Args: waitedArgs{Key: "a"}}}
	if _, err := client.EnqueueMany(ctx, three); err != nil {
		t.Fatal(err)
	}
	if b, took := next(); len(b) != 3 || took >= wait {
		t.Errorf("a full batch of %d ran %v after its enqueue; want 3 jobs, at once (before MaxBatchWait %v)", len(b), took, wait)
	}
	if _, err := client.Enqueue(ctx, waitedArgs{Key: "b"}); err != nil {
		t.Fatal(err)
	}
	if b, took := next(); len(b) != 1 || took < wait || took > wait+5*time.Second {
		t.Errorf("a lone job's batch of %d ran %v after its enqueue; want 1 job after MaxBatchWait %v, within 5s more", len(b), took, wait)
	}
}

func TestAddBatchWorkerRefusesBadSettings(t *testing.T) {
	t.Parallel()
	ws := jobs.NewWorkers()
	err := jobs.AddBatchWorker(ws, &badBatchSize{})
	if err == nil || !strings.Contains(err.Error(), "MaxBatch() must not be negative") {
		t.Fatalf("AddBatchWorker with MaxBatch -1: %v; want an error naming MaxBatch", err)
	}
	mustAdd(t, ws, jobs.WorkFunc(func(context.Context, *jobs.Job[bulkArgs]) error { return nil }))
	err = jobs.AddBatchWorker(ws, jobs.WorkBatchFunc(func(context.Context, []*jobs.Job[bulkArgs]) error { return nil }))
	if err == nil || !strings.Contains(err.Error(), `kind "bulk" already has worker`) {
		t.Fatalf("a batch worker for a kind with a worker: %v; want it refused", err)
	}
}

type badBatchSize struct {
	jobs.BatchWorkerDefaults[waitedArgs]
}

func (*badBatchSize) MaxBatch() int                                            { return -1 }
func (*badBatchSize) WorkBatch(context.Context, []*jobs.Job[waitedArgs]) error { return nil }

// upcase is Work middleware that rewrites each job's args (as a decrypting
// middleware would) and fails the first call it sees, to show a middleware
// error fails a batch as a whole.
type upcase struct {
	jobs.MiddlewareDefaults
	calls  atomic.Int64
	sizes  chan int
	failed atomic.Bool
}

func (m *upcase) Work(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	m.calls.Add(1)
	m.sizes <- len(js)
	if m.failed.CompareAndSwap(false, true) {
		return errors.New("the middleware refused the first batch")
	}
	for _, j := range js {
		var a noteArgs
		if err := msgpack.Unmarshal(j.Args, &a); err != nil {
			return err
		}
		a.Text = strings.ToUpper(a.Text)
		b, err := msgpack.Marshal(a)
		if err != nil {
			return err
		}
		j.Args = b
	}
	return next(ctx)
}

type noteArgs struct {
	Key  string `msgpack:"key"`
	Seq  int    `msgpack:"seq"`
	Text string `msgpack:"text"`
}

func (noteArgs) Kind() string                      { return "note" }
func (a noteArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// TestWorkMiddlewareWrapsABatchAsOneRun: a batch worker's Work middleware
// gets the batch's jobs, in order, in one call; what it leaves is what
// WorkBatch decodes; its error retries the batch, order kept.
func TestWorkMiddlewareWrapsABatchAsOneRun(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	mw := &upcase{sizes: make(chan int, 100)}
	var mu sync.Mutex
	var got []string
	var attempts []int
	ws := jobs.NewWorkers()
	if err := jobs.AddBatchWorker(ws, jobs.WorkBatchFunc(func(ctx context.Context, batch []*jobs.Job[noteArgs]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, j := range batch {
			got = append(got, fmt.Sprintf("%d:%s", j.Args.Seq, j.Args.Text))
		}
		attempts = append(attempts, batch[0].Attempt)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	var params []jobs.EnqueueParams
	var want []string
	for i := range 5 {
		params = append(params, jobs.EnqueueParams{Args: noteArgs{Key: "a", Seq: i, Text: "note " + strconv.Itoa(i)}})
		want = append(want, fmt.Sprintf("%d:NOTE %d", i, i))
	}
	ctx := context.Background()
	if _, err := newClient(t, env, topic).EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.Middleware = []jobs.Middleware{mw}
	cfg.Backoff = supervision.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "the five notes to be worked", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 5
	})
	waitCommittedToEnd(t, env, topic, cfg.Group)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("WorkBatch saw %v; want the middleware's args, in order: %v", got, want)
	}
	if len(attempts) == 0 || attempts[0] != 2 {
		t.Errorf("the first batch that ran was attempt %v; want 2, after the middleware failed attempt 1", attempts)
	}
	biggest := 0
	for len(mw.sizes) > 0 {
		biggest = max(biggest, <-mw.sizes)
	}
	if biggest < 2 {
		t.Errorf("the middleware's calls got at most %d jobs; want a batch's jobs in one call", biggest)
	}
}
