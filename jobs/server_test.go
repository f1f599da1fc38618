package jobs_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// seqArgs is a job of one key carrying its place in that key's sequence.
type seqArgs struct {
	Key string `msgpack:"key"`
	Seq int    `msgpack:"seq"`
}

func (a seqArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

type kindA struct{ seqArgs }
type kindB struct{ seqArgs }
type kindC struct{ seqArgs }

func (kindA) Kind() string { return "kind_a" }
func (kindB) Kind() string { return "kind_b" }
func (kindC) Kind() string { return "kind_c" }

// seqLog records (key, seq) in the order jobs ran.
type seqLog struct {
	mu      sync.Mutex
	byKey   map[string][]int
	running map[string]bool
	overlap int
	runs    atomic.Int64
}

func newSeqLog() *seqLog { return &seqLog{byKey: map[string][]int{}, running: map[string]bool{}} }

func (l *seqLog) run(a seqArgs, work func()) {
	l.mu.Lock()
	if l.running[a.Key] {
		l.overlap++
	}
	l.running[a.Key] = true
	l.byKey[a.Key] = append(l.byKey[a.Key], a.Seq)
	l.mu.Unlock()
	if work != nil {
		work()
	}
	l.mu.Lock()
	l.running[a.Key] = false
	l.mu.Unlock()
	l.runs.Add(1)
}

// check asserts each key ran 0..n-1 once each, in order, never overlapping.
func (l *seqLog) check(t *testing.T, perKey map[string]int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.overlap > 0 {
		t.Errorf("%d runs overlapped another run of their key", l.overlap)
	}
	for key, n := range perKey {
		seqs := l.byKey[key]
		if len(seqs) != n {
			t.Errorf("key %s: %d runs, want %d", key, len(seqs), n)
			continue
		}
		for i, s := range seqs {
			if s != i {
				t.Fatalf("key %s: run %d was seq %d; order broken: %v", key, i, s, seqs[:min(len(seqs), 20)])
			}
		}
	}
}

func newClient(t *testing.T, env *kafkatest.Env, topic string) *jobs.Client {
	t.Helper()
	c, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// serverConfig is a test server's configuration. It dispatches no
// scheduled jobs (with CreateTopics set, the default SchedulesAuto would
// create a schedules topic and run a dispatcher group beside every test
// server); the tests of scheduling turn it on.
func serverConfig(t *testing.T, env *kafkatest.Env, topic string, workers *jobs.Workers) jobs.Config {
	return jobs.Config{
		Brokers:           env.Brokers,
		Group:             env.Group(t),
		Topics:            []string{topic},
		Workers:           workers,
		DeadLetterTopic:   topic + ".dlq",
		CreateTopics:      &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		Schedules:         jobs.SchedulesOff,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  20 * time.Second,
		Logger:            testLogger(t),
	}
}

func startJobServer(t *testing.T, cfg jobs.Config) *jobs.Server {
	t.Helper()
	s, err := jobs.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = s.Stop(context.Background()) }) })
	return s
}

func mustAdd[T jobs.JobArgs](t *testing.T, ws *jobs.Workers, w jobs.Worker[T]) {
	t.Helper()
	if err := jobs.AddWorker(ws, w); err != nil {
		t.Fatal(err)
	}
}

func TestServerRunsEveryJobOnceInOrderPerKey(t *testing.T) {
	t.Parallel()
	const total, keys = 20_000, 500
	env := kafkatest.New(t)
	topic := env.Topic(t, 8)
	dlq := env.Topic(t, 1)
	_ = dlq

	log := newSeqLog()
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindA]) error { log.run(j.Args.seqArgs, nil); return nil }))
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindB]) error { log.run(j.Args.seqArgs, nil); return nil }))
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindC]) error { log.run(j.Args.seqArgs, nil); return nil }))

	client := newClient(t, env, topic)
	perKey := map[string]int{}
	params := make([]jobs.EnqueueParams, 0, total)
	for i := range total {
		key := "user-" + strconv.Itoa(i%keys)
		a := seqArgs{Key: key, Seq: perKey[key]}
		perKey[key]++
		var args jobs.JobArgs
		switch i % 3 {
		case 0:
			args = kindA{a}
		case 1:
			args = kindB{a}
		default:
			args = kindC{a}
		}
		params = append(params, jobs.EnqueueParams{Args: args})
	}
	ctx := context.Background()
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.Concurrency = 64
	s := startJobServer(t, cfg)
	kafkatest.WaitFor(t, 2*time.Minute, "20,000 jobs to run", func() bool { return log.runs.Load() >= total })
	waitCommittedToEnd(t, env, topic, cfg.Group)
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	log.check(t, perKey)
	if n := log.runs.Load(); n != total {
		t.Errorf("%d runs for %d jobs", n, total)
	}
}

type flakyArgs struct {
	Key  string `msgpack:"key"`
	Seq  int    `msgpack:"seq"`
	Fail int    `msgpack:"fail"` // times to fail before succeeding
}

func (flakyArgs) Kind() string                      { return "flaky" }
func (a flakyArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

func TestRetryBacksOffHoldsItsKeyAndLetsOtherKeysRun(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1) // one partition: the other key shares it
	var (
		mu       sync.Mutex
		attempts = map[string][]time.Time{}
		order    []string
	)
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[flakyArgs]) error {
		id := fmt.Sprintf("%s#%d", j.Args.Key, j.Args.Seq)
		mu.Lock()
		defer mu.Unlock()
		attempts[id] = append(attempts[id], time.Now())
		if len(attempts[id]) <= j.Args.Fail {
			return fmt.Errorf("attempt %d of %s fails on purpose", j.Attempt, id)
		}
		order = append(order, id)
		return nil
	}))
	client := newClient(t, env, topic)
	params := []jobs.EnqueueParams{{Args: flakyArgs{Key: "slow", Seq: 0, Fail: 2}}}
	for i := 1; i <= 3; i++ {
		params = append(params, jobs.EnqueueParams{Args: flakyArgs{Key: "slow", Seq: i}})
	}
	for i := range 50 {
		params = append(params, jobs.EnqueueParams{Args: flakyArgs{Key: "other", Seq: i}})
	}
	if _, err := client.EnqueueMany(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.Backoff = supervision.Backoff{Initial: 200 * time.Millisecond, Max: time.Second}
	startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "all 54 jobs to succeed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 54
	})
	mu.Lock()
	defer mu.Unlock()
	runs := attempts["slow#0"]
	if len(runs) != 3 {
		t.Fatalf("the flaky job ran %d times, want 3", len(runs))
	}
	if gap := runs[1].Sub(runs[0]); gap < 200*time.Millisecond {
		t.Errorf("second attempt %v after the first; backoff is 200ms", gap)
	}
	if gap := runs[2].Sub(runs[1]); gap < 400*time.Millisecond {
		t.Errorf("third attempt %v after the second; backoff doubles to 400ms", gap)
	}
	pos := map[string]int{}
	for i, id := range order {
		pos[id] = i
	}
	for i := 1; i <= 3; i++ {
		if pos[fmt.Sprintf("slow#%d", i)] < pos["slow#0"] {
			t.Errorf("slow#%d ran before the retried slow#0", i)
		}
	}
	if pos["other#49"] > pos["slow#0"] {
		t.Errorf("the other key's jobs waited for the retried job: other#49 at %d, slow#0 at %d", pos["other#49"], pos["slow#0"])
	}
}

// dlqCollector reads a dead-letter topic with ordo's own record server.
func dlqCollector(t *testing.T, env *kafkatest.Env, topic string) func() []kafka.Record {
	var mu sync.Mutex
	var got []kafka.Record
	startServer(t, consumerConfig(t, env, topic, env.Group(t)), actors.Config{
		Handler: func(ctx context.Context, r *kafka.Record, _ int) actors.Outcome {
			mu.Lock()
			got = append(got, *r)
			mu.Unlock()
			return actors.Done()
		},
	})
	return func() []kafka.Record {
		mu.Lock()
		defer mu.Unlock()
		return append([]kafka.Record(nil), got...)
	}
}

type failArgs struct {
	Key  string `msgpack:"key"`
	Mode string `msgpack:"mode"` // "ok", "fail", "permanent", "panic"
}

func (failArgs) Kind() string                      { return "fails" }
func (a failArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

func headerOf(r kafka.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestDeadLettersCarryTheirReasonAndThePartitionKeepsFlowing(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	dlqTopic := env.Topic(t, 1)
	var okRuns atomic.Int64
	var panics atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[failArgs]) error {
		switch j.Args.Mode {
		case "fail":
			return errors.New("always fails")
		case "permanent":
			return jobs.Permanent(errors.New("cannot ever work"))
		case "panic":
			panics.Add(1)
			panic("worker blew up")
		}
		okRuns.Add(1)
		return nil
	}))
	client := newClient(t, env, topic)
	ctx := context.Background()
	enqueue := func(mode string) {
		if _, err := client.Enqueue(ctx, failArgs{Key: "k-" + mode, Mode: mode}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(ctx, failArgs{Key: "good", Mode: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(name string, value []byte, headers ...kafka.Header) {
		p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		headers = append(headers, kafka.Header{Key: "case", Value: []byte(name)})
		if err := p.Produce(ctx, kafka.Message{Topic: topic, Key: []byte("raw-" + name), Value: value, Headers: headers}); err != nil {
			t.Fatal(err)
		}
	}
	good, err := msgpack.Marshal(map[string]any{"v": 1, "kind": "fails", "id": "x", "args": []byte{0x80}})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := msgpack.Marshal(map[string]any{"v": 1, "kind": "no_such_kind", "id": "y", "args": []byte{0x80}})
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 64)
	_, _ = rand.Read(random)

	enqueue("fail")
	enqueue("permanent")
	enqueue("panic")
	raw("random", random)
	raw("truncated", good[:len(good)/2])
	raw("unknown", unknown, kafka.Header{Key: jobs.HeaderKind, Value: []byte("no_such_kind")})
	raw("empty", nil)
	enqueue("ok")

	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlqTopic
	cfg.MaxAttempts = 3
	cfg.Backoff = supervision.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}
	startJobServer(t, cfg)
	dead := dlqCollector(t, env, dlqTopic)

	kafkatest.WaitFor(t, time.Minute, "7 dead letters and 5 good jobs", func() bool {
		return len(dead()) == 7 && okRuns.Load() == 5
	})
	byCase := map[string]kafka.Record{}
	for _, r := range dead() {
		name := headerOf(r, "case")
		if name == "" {
			name = strings.TrimPrefix(string(r.Key), "k-")
		}
		byCase[name] = r
	}
	want := []struct {
		name, attempts, kind, reason string
	}{
		{"fail", "3", "fails", "attempts exhausted"},
		{"permanent", "1", "fails", "cannot ever work"},
		{"panic", "3", "fails", "worker blew up"},
		{"random", "1", "", "undecodable"},
		{"truncated", "1", "", "undecodable"},
		{"unknown", "1", "no_such_kind", `no worker for kind "no_such_kind"`},
		{"empty", "1", "", "empty value"},
	}
	for _, w := range want {
		r, ok := byCase[w.name]
		if !ok {
			t.Errorf("%s: not in the dead-letter topic (have %v)", w.name, keysOf(byCase))
			continue
		}
		check := map[string]string{
			jobs.HeaderSourceTopic:    topic,
			jobs.HeaderSourceGroup:    cfg.Group,
			jobs.HeaderSourceAttempts: w.attempts,
			jobs.HeaderSourceKind:     w.kind,
		}
		for h, v := range check {
			if got := headerOf(r, h); got != v {
				t.Errorf("%s: header %s = %q, want %q", w.name, h, got, v)
			}
		}
		if headerOf(r, jobs.HeaderSourcePartition) != "0" || headerOf(r, jobs.HeaderSourceOffset) == "" {
			t.Errorf("%s: source partition/offset headers %q/%q", w.name, headerOf(r, jobs.HeaderSourcePartition), headerOf(r, jobs.HeaderSourceOffset))
		}
		if e := headerOf(r, jobs.HeaderError); !strings.Contains(e, w.reason) {
			t.Errorf("%s: error header %q does not say %q", w.name, e, w.reason)
		}
	}
	if n := panics.Load(); n != 3 {
		t.Errorf("the panicking job ran %d times, want 3 (retried, then dead-lettered)", n)
	}
	waitCommittedToEnd(t, env, topic, cfg.Group)
}

func keysOf(m map[string]kafka.Record) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

type tallyArgs struct {
	Account string `msgpack:"account"`
	Seq     int    `msgpack:"seq"`
}

func (tallyArgs) Kind() string                      { return "tally" }
func (a tallyArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Account} }

type tally struct {
	account string
	seen    int
}

func TestKeyStateIsPerKeyAndLastsAcrossJobs(t *testing.T) {
	t.Parallel()
	const accounts, perAccount = 20, 50
	env := kafkatest.New(t)
	topic := env.Topic(t, 2)
	var mu sync.Mutex
	var faults []string
	var runs atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[tallyArgs]) error {
		st := jobs.KeyState[tally](ctx)
		if st.account == "" {
			st.account = j.Args.Account
		}
		if st.account != j.Args.Account || st.seen != j.Args.Seq {
			mu.Lock()
			faults = append(faults, fmt.Sprintf("job %s#%d saw state of %s after %d jobs", j.Args.Account, j.Args.Seq, st.account, st.seen))
			mu.Unlock()
		}
		st.seen++
		runs.Add(1)
		return nil
	}))
	client := newClient(t, env, topic)
	var params []jobs.EnqueueParams
	for s := range perAccount {
		for a := range accounts {
			params = append(params, jobs.EnqueueParams{Args: tallyArgs{Account: "acct-" + strconv.Itoa(a), Seq: s}})
		}
	}
	if _, err := client.EnqueueMany(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.IdleTimeout = time.Minute
	startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "all jobs", func() bool { return runs.Load() == accounts*perAccount })
	mu.Lock()
	defer mu.Unlock()
	if len(faults) > 0 {
		t.Fatalf("%d jobs saw the wrong state, e.g. %s", len(faults), faults[0])
	}
}

type longArgs struct {
	Key    string `msgpack:"key"`
	Millis int    `msgpack:"millis"`
}

func (longArgs) Kind() string                      { return "long" }
func (a longArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

type longWorker struct {
	jobs.WorkerDefaults[longArgs]
	started, revoked chan struct{}
	// release, when set, ends the job when it is closed, instead of
	// after its Millis.
	release chan struct{}
	runs    atomic.Int32
	once    sync.Once
}

func (*longWorker) LongRunning() bool { return true }

func (w *longWorker) Work(ctx context.Context, j *jobs.Job[longArgs]) error {
	if w.runs.Add(1) == 1 {
		close(w.started)
	}
	var deadline <-chan time.Time
	if w.release == nil {
		deadline = time.After(time.Duration(j.Args.Millis) * time.Millisecond)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-deadline:
			return nil
		case <-w.release: // nil unless set: never ready
			// A revocation is for good: one while the job ran shows here.
			if jobs.Revoked(ctx) {
				w.once.Do(func() { close(w.revoked) })
				return errors.New("partition revoked while the job ran")
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if jobs.Revoked(ctx) {
				w.once.Do(func() { close(w.revoked) })
				return errors.New("partition revoked; stopping early")
			}
		}
	}
}

func TestLongRunningJobOutlivesTheRebalanceTimeout(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	// The embedded broker allows sessions down to 100 ms: the member
	// outlives shorter timeouts there just the same.
	sessionTimeout, rebalanceTimeout := 6*time.Second, 10*time.Second
	if env.Embedded {
		sessionTimeout, rebalanceTimeout = 3*time.Second, 5*time.Second
	}
	topic := env.Topic(t, 2)
	long := &longWorker{started: make(chan struct{}), revoked: make(chan struct{})}
	shortLog := newSeqLog()
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.Worker[longArgs](long))
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindA]) error { shortLog.run(j.Args.seqArgs, nil); return nil }))
	client := newClient(t, env, topic)
	ctx := context.Background()
	if _, err := client.Enqueue(ctx, longArgs{Key: "long", Millis: 40_000}); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.SessionTimeout, cfg.RebalanceTimeout = sessionTimeout, rebalanceTimeout
	cfg.LongRunningGrace = time.Second
	logger, logs := captureLogs(t, slog.LevelInfo)
	cfg.Logger = logger
	a := startJobServer(t, cfg)
	select {
	case <-long.started:
	case <-time.After(time.Minute):
		t.Fatal("the long job did not start")
	}
	began := time.Now()
	gen := a.Stats()[0].Generation

	// Other keys and the other partition keep flowing meanwhile.
	perKey := map[string]int{}
	var params []jobs.EnqueueParams
	for i := range 200 {
		key := "short-" + strconv.Itoa(i%20)
		params = append(params, jobs.EnqueueParams{Args: kindA{seqArgs{Key: key, Seq: perKey[key]}}})
		perKey[key]++
	}
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 10*time.Second, "short jobs to run beside the long one", func() bool { return shortLog.runs.Load() == 200 })
	shortLog.check(t, perKey)

	// Past the rebalance and session timeouts the member is still in its
	// generation with both partitions.
	kafkatest.WaitFor(t, 30*time.Second, "the long job to outlive the rebalance timeout", func() bool {
		st := a.Stats()
		if len(st) != 2 || st[0].Generation != gen {
			t.Fatalf("member lost its generation or partitions while the long job ran: %+v", st)
		}
		return time.Since(began) > rebalanceTimeout+2*time.Second
	})

	joined := time.Now()
	cfgB := cfg
	cfgB.Logger = testLogger(t)
	b := startJobServer(t, cfgB)
	kafkatest.WaitFor(t, 20*time.Second, "the rebalance to complete", func() bool { return len(b.Stats()) > 0 })
	rebalance := time.Since(joined)
	if rebalance > rebalanceTimeout {
		t.Errorf("rebalance took %v while a 40 s job ran; it must not wait for the job", rebalance)
	}
	select {
	case <-long.revoked:
	case <-time.After(10 * time.Second):
		t.Fatal("the long job never saw its partition revoked")
	}
	// Its offset was not committed, so the partition's next owner runs it
	// again.
	kafkatest.WaitFor(t, 20*time.Second, "the revoked long job to run again on the next owner", func() bool { return long.runs.Load() >= 2 })
	// The revocation is logged per partition, with what was in flight, how
	// long the drain took and what was committed. The long job that
	// stopped because of it is not a failure waiting for a retry.
	kafkatest.WaitFor(t, 10*time.Second, "the revocation to be logged", func() bool {
		return logs.count("ordo: partition released", "topic="+topic, "in_flight_at_revoke=", "drain=", "committed=") >= 2
	})
	// The stop is logged when the job returns, which a revocation does not
	// wait for; and the job's next run may be revoked too, if the group
	// settles in two rounds.
	kafkatest.WaitFor(t, 10*time.Second, "the long job's stop at revocation to be logged", func() bool {
		return logs.count("job stopped by revocation", "kind=long") >= 1
	})
	if n := logs.count("job failed; will retry", "kind=long"); n > 0 {
		t.Errorf("the long job stopped by revocation was logged %d times as failed, to be retried", n)
	}
	t.Logf("long job started %v before the join; rebalance took %v", joined.Sub(began), rebalance)
}
