package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// timedArgs is a job that knows when it was due, so its worker can say how
// late it ran.
type timedArgs struct {
	Key   string    `msgpack:"key"`
	Seq   int       `msgpack:"seq"`
	RunAt time.Time `msgpack:"run_at"`
}

func (timedArgs) Kind() string                      { return "timed" }
func (a timedArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// timedRun is one run of a timedArgs job.
type timedRun struct {
	args  timedArgs
	id    string
	began time.Time
}

// runLog records the runs of timedArgs jobs.
type runLog struct {
	mu   sync.Mutex
	runs []timedRun
}

func (l *runLog) add(j *jobs.Job[timedArgs]) {
	l.mu.Lock()
	l.runs = append(l.runs, timedRun{args: j.Args, id: j.ID, began: time.Now()})
	l.mu.Unlock()
}

func (l *runLog) snapshot() []timedRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]timedRun(nil), l.runs...)
}

func (l *runLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.runs)
}

func (l *runLog) ran(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		if r.id == id {
			return true
		}
	}
	return false
}

// scheduleEnv is a job topic with its schedules topic, a client and a
// server that dispatches it.
type scheduleEnv struct {
	env    *kafkatest.Env
	topic  string
	client *jobs.Client
	log    *runLog
}

// newScheduleEnv creates topic (partitions) and its compacted schedules
// topic (schedulePartitions), and registers the timedArgs worker in ws
// (a new registry when nil). Start the server with start.
func newScheduleEnv(t *testing.T, partitions, schedulePartitions int) *scheduleEnv {
	t.Helper()
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := topic + jobs.DefaultScheduleSuffix
	if err := env.Admin.CreateTopics(ctx, kafka.Topic{Name: st, Partitions: schedulePartitions,
		Configs: map[string]string{"cleanup.policy": "compact"}}); err != nil {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = env.Admin.DeleteTopics(ctx, st, topic+".dlq")
		})
	}
	return &scheduleEnv{env: env, topic: topic, client: newClient(t, env, topic), log: &runLog{}}
}

// config is the server's config: the timedArgs worker plus ws's.
func (e *scheduleEnv) config(t *testing.T, ws *jobs.Workers) jobs.Config {
	if ws == nil {
		ws = jobs.NewWorkers()
	}
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[timedArgs]) error {
		e.log.add(j)
		return nil
	}))
	cfg := serverConfig(t, e.env, e.topic, ws)
	cfg.Concurrency = 32
	cfg.Schedules = jobs.SchedulesOn
	return cfg
}

// TestDelayedJobsRunNoEarlierThanDueAndPromptlyUnderLoad: never early is the
// guarantee; how late is speed, which bench S9 measures (p99 about 50 ms).
// Here a job must start within a few seconds of its run-at, a bound that
// catches a dispatcher that waits for something (a poll it missed, a
// rebalance) without failing when the test shares two cores with others.
func TestDelayedJobsRunNoEarlierThanDueAndPromptlyUnderLoad(t *testing.T) {
	t.Parallel()
	const keys, scheduled, immediate = 50, 2000, 2000
	const promptly = 5 * time.Second
	e := newScheduleEnv(t, 4, 4)
	startJobServer(t, e.config(t, nil))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 1))

	// Jobs due over 3 s, from 1.5 s after their batch is built, enqueued in
	// batches among immediate jobs that keep the server busy. The immediate
	// jobs have keys of their own: the promise is about when a scheduled
	// job is dispatched and started, not about how long it then waits
	// behind earlier jobs of its key, which an immediate job would too.
	var params []jobs.EnqueueParams
	for i := range scheduled {
		params = append(params, jobs.EnqueueParams{Args: timedArgs{Key: "s" + strconv.Itoa(i%keys), Seq: i}})
	}
	for i := range immediate {
		params = append(params, jobs.EnqueueParams{Args: timedArgs{Key: "i" + strconv.Itoa(i%keys), Seq: -1}})
	}
	rng.Shuffle(len(params), func(i, j int) { params[i], params[j] = params[j], params[i] })
	// written is when each scheduled job's enqueue returned: a job whose
	// write is acknowledged after its run-at (a slow enqueue under load)
	// cannot be dispatched before then, so its lateness counts from there.
	written := make(map[int]time.Time, scheduled)
	for chunk := range slices.Chunk(params, 500) {
		base := time.Now().Add(1500 * time.Millisecond)
		for i, p := range chunk {
			if a := p.Args.(timedArgs); a.Seq >= 0 {
				a.RunAt = base.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
				chunk[i] = jobs.EnqueueParams{Args: a, Opts: []jobs.EnqueueOption{jobs.WithRunAt(a.RunAt)}}
			}
		}
		infos, err := e.client.EnqueueMany(ctx, chunk)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for i, info := range infos {
			if a := chunk[i].Args.(timedArgs); a.Seq >= 0 {
				if !info.RunAt.Equal(a.RunAt.UTC()) {
					t.Fatalf("JobInfo.RunAt is %v, want %v", info.RunAt, a.RunAt)
				}
				written[a.Seq] = now
			}
		}
	}
	kafkatest.WaitFor(t, time.Minute, "every job to run", func() bool { return e.log.len() >= scheduled+immediate })

	var late []time.Duration
	slow := 0
	for _, r := range e.log.snapshot() {
		if r.args.Seq < 0 {
			continue
		}
		if d := r.began.Sub(r.args.RunAt); d < 0 {
			t.Errorf("job %d ran %v before its run-at", r.args.Seq, -d)
		}
		from := r.args.RunAt
		if w := written[r.args.Seq]; w.After(from) {
			from = w
			slow++
		}
		d := r.began.Sub(from)
		if d > promptly {
			t.Errorf("job %d ran %v after its run-at (or its enqueue, if later), more than %v", r.args.Seq, d, promptly)
		}
		late = append(late, d)
	}
	if len(late) != scheduled {
		t.Errorf("%d scheduled jobs ran, want %d", len(late), scheduled)
	}
	t.Logf("lateness of %d jobs (%d counted from an enqueue that returned after their run-at): %s", len(late), slow, quantiles(late))
}

func TestJobsOfAKeyDueAtOneInstantRunInEnqueueOrderAtTheirDispatchPoint(t *testing.T) {
	t.Parallel()
	const keys, perKey = 8, 25
	e := newScheduleEnv(t, 3, 3)
	startJobServer(t, e.config(t, nil))
	ctx := context.Background()
	// About 130 synchronous enqueues come first, each a round trip that
	// every in-sync replica acknowledges: 8 s leaves them room on a loaded
	// machine (2 s did not, on Kafka beside another suite; 5 s did not on
	// Kafka under make test with -parallel 4).
	due := time.Now().Add(8 * time.Second)

	// Per key: an immediate job (seq 0), the scheduled ones (seq 2..),
	// enqueued one by one and in batches, and an immediate job enqueued
	// after them but before they are due (seq 1): the scheduled jobs take
	// their place when dispatched, after it.
	for k := range keys {
		key := "key-" + strconv.Itoa(k)
		if _, err := e.client.Enqueue(ctx, timedArgs{Key: key, Seq: 0}); err != nil {
			t.Fatal(err)
		}
	}
	for s := range perKey {
		var batch []jobs.EnqueueParams
		for k := range keys {
			a := timedArgs{Key: "key-" + strconv.Itoa(k), Seq: 2 + s, RunAt: due}
			if s%2 == 0 {
				if _, err := e.client.Enqueue(ctx, a, jobs.WithRunAt(due)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			batch = append(batch, jobs.EnqueueParams{Args: a, Opts: []jobs.EnqueueOption{jobs.WithRunAt(due)}})
		}
		if len(batch) > 0 {
			if _, err := e.client.EnqueueMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k := range keys {
		if _, err := e.client.Enqueue(ctx, timedArgs{Key: "key-" + strconv.Itoa(k), Seq: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if time.Now().After(due) {
		t.Fatal("enqueueing took past the due time; the test proves nothing")
	}
	kafkatest.WaitFor(t, time.Minute, "every job to run", func() bool { return e.log.len() >= keys*(perKey+2) })
	// Then an immediate job after the dispatch: it runs last.
	for k := range keys {
		if _, err := e.client.Enqueue(ctx, timedArgs{Key: "key-" + strconv.Itoa(k), Seq: perKey + 2}); err != nil {
			t.Fatal(err)
		}
	}
	kafkatest.WaitFor(t, time.Minute, "the last jobs to run", func() bool { return e.log.len() >= keys*(perKey+3) })
	byKey := map[string][]int{}
	for _, r := range e.log.snapshot() {
		byKey[r.args.Key] = append(byKey[r.args.Key], r.args.Seq)
	}
	for k := range keys {
		key := "key-" + strconv.Itoa(k)
		seqs := byKey[key]
		for i, s := range seqs {
			if s != i {
				t.Fatalf("%s ran %v; want 0, 1, ..., %d", key, seqs, perKey+2)
			}
		}
		if len(seqs) != perKey+3 {
			t.Errorf("%s ran %d jobs, want %d", key, len(seqs), perKey+3)
		}
	}
}

func TestCancelBeforeDueNeverRunsAndCancelAfterDispatchSaysSo(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 2, 2)
	s := startJobServer(t, e.config(t, nil))
	ctx := context.Background()
	select { // from Ready on, the dispatcher answers cancels
	case <-s.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the server is not ready after 30 s")
	}
	if st := s.Schedules(); len(st) != 2 || st[0].Reading || st[1].Reading {
		t.Fatalf("ready, and Schedules() = %+v; want both partitions read", st)
	}

	due := time.Now().Add(2 * time.Second)
	cancelled, err := e.client.Enqueue(ctx, timedArgs{Key: "a", Seq: 0}, jobs.WithRunAt(due))
	if err != nil {
		t.Fatal(err)
	}
	// A job of the same key due just after the cancelled one: once it ran,
	// the cancelled one would have run before it.
	witness, err := e.client.Enqueue(ctx, timedArgs{Key: "a", Seq: 1}, jobs.WithRunAt(due.Add(100*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.client.Cancel(ctx, cancelled.ID); err != nil || got != jobs.Cancelled {
		t.Fatalf("Cancel before due = %v, %v; want Cancelled", got, err)
	}
	soon, err := e.client.Enqueue(ctx, timedArgs{Key: "b", Seq: 0}, jobs.WithDelay(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 30*time.Second, "the witness and the job due soon to run", func() bool {
		return e.log.ran(witness.ID) && e.log.ran(soon.ID)
	})
	if e.log.ran(cancelled.ID) {
		t.Error("the job cancelled before it was due ran")
	}
	if got, err := e.client.Cancel(ctx, soon.ID); err != nil || got != jobs.CancelTooLate {
		t.Errorf("Cancel after dispatch = %v, %v; want CancelTooLate", got, err)
	}
	if got, err := e.client.Cancel(ctx, "01NOSUCHJOB000000000000000"); err != nil || got != jobs.CancelTooLate {
		t.Errorf("Cancel of an unknown id = %v, %v; want CancelTooLate", got, err)
	}
	if _, err := e.client.Cancel(ctx, ""); !errors.Is(err, jobs.ErrInvalidEnqueue) {
		t.Errorf("Cancel of an empty id: %v; want ErrInvalidEnqueue", err)
	}
}

func TestBadScheduleRecordsAreDeadLetteredAndDispatchingGoesOn(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 2, 1)
	cfg := e.config(t, nil)
	s := startJobServer(t, cfg)
	dead := dlqCollector(t, e.env, cfg.DeadLetterTopic)
	ctx := context.Background()
	st := e.topic + jobs.DefaultScheduleSuffix

	// A good schedule record, built by the client, to copy and spoil.
	now := time.Now()
	good := func(seq int, runAt time.Time) kafka.Message {
		o := enqueue.Collect([]jobs.EnqueueOption{jobs.WithRunAt(runAt)})
		m, _, err := enqueue.Prepare(e.topic, timedArgs{Key: "g", Seq: seq, RunAt: runAt}, &o, time.Now().UTC(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	spoil := func(m kafka.Message, name, value string) kafka.Message {
		hs := []kafka.Header{}
		for _, h := range m.Headers {
			if h.Key != name {
				hs = append(hs, h)
			}
		}
		if value != "" {
			hs = append(hs, kafka.Header{Key: name, Value: []byte(value)})
		}
		m.Headers = hs
		return m
	}
	type badCase struct {
		msg    kafka.Message
		reason string
	}
	bad := []badCase{
		{kafka.Message{Topic: st, Key: []byte("garbage"), Value: []byte("\xff\x00 not a job")}, "without the ordo-run-at header"},
		{func() kafka.Message {
			m := good(100, now.Add(time.Second))
			m.Value = []byte("\xc1garbage")
			return m
		}(), "undecodable"},
		{spoil(good(101, now.Add(time.Second)), jobs.HeaderRunAt, ""), "without the ordo-run-at header"},
		{spoil(good(102, now.Add(time.Second)), jobs.HeaderRunAt, "tomorrow"), "is not an RFC 3339 time"},
		{spoil(good(103, now.Add(time.Second)), jobs.HeaderRunAt, now.Add(-48*time.Hour).Format(time.RFC3339Nano)), "before the record was written"},
		{spoil(good(104, now.Add(time.Second)), jobs.HeaderRunAt, now.Add(20*365*24*time.Hour).Format(time.RFC3339Nano)), "after the record was written"},
		{spoil(good(105, now.Add(time.Second)), jobs.HeaderTargetTopic, "elsewhere"), "dispatches to"},
	}
	if e.env.Embedded {
		// Apache Kafka refuses a record without a key on a compacted
		// topic; the embedded broker takes it.
		bad = append(bad, badCase{kafka.Message{Topic: st, Value: []byte("keyless")}, "without a key"})
	}
	var msgs []kafka.Message
	const goods = 20
	for i := range goods {
		msgs = append(msgs, good(i, now.Add(time.Duration(500+i*50)*time.Millisecond)))
		if i < len(bad) {
			msgs = append(msgs, bad[i].msg)
		}
	}
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.env.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 30*time.Second, "the good jobs to run and the bad ones to be dead-lettered", func() bool {
		return e.log.len() >= goods && len(dead()) >= len(bad)
	})
	for _, r := range e.log.snapshot() {
		if r.args.Seq >= goods {
			t.Errorf("spoiled job %d ran", r.args.Seq)
		}
		if late := r.began.Sub(r.args.RunAt); late < 0 || late > time.Second {
			t.Errorf("job %d ran %v after its run-at", r.args.Seq, late)
		}
	}
	got := dead()
	if len(got) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(got), len(bad))
	}
	reasons := make([]string, len(got))
	for i, r := range got {
		reasons[i] = headerOf(r, jobs.HeaderError)
		if src := headerOf(r, jobs.HeaderSourceTopic); src != st {
			t.Errorf("dead letter's source topic is %q, want %q", src, st)
		}
	}
	for _, b := range bad {
		found := false
		for _, r := range reasons {
			found = found || strings.Contains(r, b.reason)
		}
		if !found {
			t.Errorf("no dead letter says %q; reasons: %q", b.reason, reasons)
		}
	}
	kafkatest.WaitFor(t, 10*time.Second, "Schedules() to show nothing pending", func() bool {
		p := s.Schedules()
		return len(p) == 1 && p[0].Pending == 0
	})
}

func quantiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("p50 %v p99 %v max %v", q(0.5), q(0.99), s[len(s)-1])
}

func TestDispatchingMovesToTheServerLeftWhenOneStops(t *testing.T) {
	t.Parallel()
	const jobsDue = 600
	e := newScheduleEnv(t, 3, 3)
	cfg := e.config(t, nil)
	first := startJobServer(t, cfg)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(15, 2))
	base := time.Now().Add(time.Second)
	var params []jobs.EnqueueParams
	for i := range jobsDue {
		runAt := base.Add(time.Duration(rng.IntN(5000)) * time.Millisecond)
		params = append(params, jobs.EnqueueParams{Args: timedArgs{Key: "k" + strconv.Itoa(i%30), Seq: i, RunAt: runAt},
			Opts: []jobs.EnqueueOption{jobs.WithRunAt(runAt)}})
	}
	if _, err := e.client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	// The second server joins while jobs are being dispatched, and the
	// first stops in the middle of the window.
	kafkatest.WaitFor(t, 30*time.Second, "the first jobs to run", func() bool { return e.log.len() > 0 })
	second := startJobServer(t, cfg)
	kafkatest.WaitFor(t, 30*time.Second, "a third of the jobs to run", func() bool { return e.log.len() >= jobsDue/3 })
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, time.Minute, "every job to run", func() bool { return e.log.len() >= jobsDue })
	kafkatest.WaitFor(t, 10*time.Second, "the second server to dispatch every schedules partition", func() bool {
		return len(second.Schedules()) == 3
	})
	runs := map[int]int{}
	var late []time.Duration
	for _, r := range e.log.snapshot() {
		runs[r.args.Seq]++
		if d := r.began.Sub(r.args.RunAt); d < 0 {
			t.Errorf("job %d ran %v before its run-at", r.args.Seq, -d)
		} else {
			late = append(late, d)
		}
	}
	for i := range jobsDue {
		if runs[i] != 1 {
			t.Errorf("job %d ran %d times; a graceful hand-over dispatches each job once", i, runs[i])
		}
	}
	t.Logf("lateness across the hand-over: %s", quantiles(late))
}
