package jobs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// The tests here kill a server with SIGKILL, so it runs in a child process:
// this test binary again, running TestScheduleChildServer with childSpecEnv
// set. The child reports on its stdout, one line at a time and before Work
// returns, so every run the broker may have committed is reported:
//
//	ran <job id> <seq> <ms late>    a timedArgs job ran
//	tick <job id> <tick>            a tickArgs job ran (a periodic job)
//	owns <partition> ...            the schedules partitions it dispatches
const childSpecEnv = "ORDO_SCHEDULE_CHILD"

type childSpec struct {
	Brokers  []string
	Topic    string
	Group    string
	Periodic string // the spec of a periodic tickArgs job; "" for none
}

// tickArgs is the periodic job of the kill tests.
type tickArgs struct{}

func (tickArgs) Kind() string { return "tick" }

func TestScheduleChildServer(t *testing.T) {
	raw := os.Getenv(childSpecEnv)
	if raw == "" {
		t.Skip("runs only as the child process of the schedule kill tests")
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // unbuffered: in the pipe when this returns
	}
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[timedArgs]) error {
		say("ran %s %d %d", j.ID, j.Args.Seq, time.Since(j.Args.RunAt).Milliseconds())
		return nil
	}))
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[tickArgs]) error {
		for _, h := range j.Headers {
			if h.Key == jobs.HeaderPeriodicTick {
				say("tick %s %s", j.ID, h.Value)
			}
		}
		return nil
	}))
	cfg := jobs.Config{Brokers: spec.Brokers, Group: spec.Group, Topics: []string{spec.Topic}, Workers: ws,
		DeadLetterTopic: spec.Topic + ".dlq", Schedules: jobs.SchedulesOn, Concurrency: 32,
		CreateTopics:      &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if spec.Periodic != "" {
		cfg.Periodic = []jobs.PeriodicJob{jobs.Periodic(spec.Periodic, tickArgs{}, jobs.WithKey("tick"))}
	}
	s, err := jobs.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The parent closes stdin to stop the child gracefully.
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-eof:
			_ = s.Stop(context.Background())
			return
		case <-tick.C:
			var owned []string
			for _, st := range s.Schedules() {
				if !st.Reading {
					owned = append(owned, strconv.Itoa(st.Partition))
				}
			}
			say("owns %s", strings.Join(owned, " "))
		}
	}
}

// child is a server in a child process, and what it reported.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when its stdout is drained
	log   io.Writer     // gets the lines that are not reports

	mu    sync.Mutex
	ran   []childRun
	ticks []childTick
	owns  []int
}

type childRun struct {
	id   string
	seq  int
	late time.Duration
}

type childTick struct {
	id, tick string
	seen     time.Time // when the parent read the report
}

func startChild(t *testing.T, spec childSpec) *child {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestScheduleChildServer$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), childSpecEnv+"="+string(raw))
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{}), log: testWriter{t}}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go c.read(stdout)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		_ = cmd.Wait()
	})
	return c
}

func (c *child) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		c.mu.Lock()
		switch {
		case len(f) == 4 && f[0] == "ran":
			seq, _ := strconv.Atoi(f[2])
			ms, _ := strconv.Atoi(f[3])
			c.ran = append(c.ran, childRun{id: f[1], seq: seq, late: time.Duration(ms) * time.Millisecond})
		case len(f) == 3 && f[0] == "tick":
			c.ticks = append(c.ticks, childTick{id: f[1], tick: f[2], seen: time.Now()})
		case len(f) >= 1 && f[0] == "owns":
			c.owns = c.owns[:0]
			for _, p := range f[1:] {
				n, _ := strconv.Atoi(p)
				c.owns = append(c.owns, n)
			}
		default:
			_, _ = c.log.Write(sc.Bytes())
		}
		c.mu.Unlock()
	}
}

// kill kills the child with SIGKILL and waits until it is gone and its
// reports are read.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	_ = c.cmd.Wait()
}

// stop stops the child gracefully and waits until it is gone.
func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		t.Fatal("the child did not stop within a minute")
	}
	_ = c.cmd.Wait()
}

func (c *child) runs() []childRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ran)
}

func (c *child) tickRuns() []childTick {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ticks)
}

func (c *child) owned() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.owns)
}

func TestKilledDispatcherLosesNoJobAndRepeatsOnlyThoseNotTombstoned(t *testing.T) {
	t.Parallel()
	const total, keys = 10_000, 200
	e := newScheduleEnv(t, 4, 4)
	group := e.env.Group(t)
	st := e.topic + jobs.DefaultScheduleSuffix
	first := startChild(t, childSpec{Brokers: e.env.Brokers, Topic: e.topic, Group: group})
	kafkatest.WaitFor(t, time.Minute, "the child to dispatch the four schedules partitions", func() bool { return len(first.owned()) == 4 })

	// 10k jobs due over the next 15 s: the kill comes a third of the way
	// in, and the next owner takes over (after the dead member's 6 s
	// session timeout) with jobs still to come due.
	ctx := context.Background()
	base := time.Now().Add(2 * time.Second)
	var params []jobs.EnqueueParams
	for i := range total {
		runAt := base.Add(time.Duration(i) * 15 * time.Second / total)
		params = append(params, jobs.EnqueueParams{Args: timedArgs{Key: "k" + strconv.Itoa(i%keys), Seq: i, RunAt: runAt},
			Opts: []jobs.EnqueueOption{jobs.WithRunAt(runAt)}})
	}
	for chunk := range slices.Chunk(params, 1000) {
		if _, err := e.client.EnqueueMany(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	kafkatest.WaitFor(t, time.Minute, "a third of the jobs to run", func() bool { return len(first.runs()) >= total/3 })
	first.kill(t)

	// What the killed dispatcher left: jobs written to the job topic whose
	// schedule records it had not tombstoned. Only these may be
	// dispatched twice.
	dispatched := map[string]int{}
	for _, r := range e.env.ReadAll(t, e.topic) {
		dispatched[headerOf(r, jobs.HeaderJobID)]++
	}
	tombstoned := map[string]bool{}
	for _, r := range e.env.ReadAll(t, st) {
		if r.Value == nil {
			tombstoned[string(r.Key)] = true
		}
	}
	unconfirmed := 0
	for id := range dispatched {
		if !tombstoned[id] {
			unconfirmed++
		}
	}

	cfg := e.config(t, nil)
	cfg.Group = group
	startJobServer(t, cfg)
	ran := func() map[int]int {
		seqs := map[int]int{}
		for _, r := range first.runs() {
			seqs[r.seq]++
		}
		for _, r := range e.log.snapshot() {
			seqs[r.args.Seq]++
		}
		return seqs
	}
	kafkatest.WaitFor(t, 2*time.Minute, "every job to run", func() bool { return len(ran()) >= total })

	for _, r := range first.runs() {
		if r.late < 0 {
			t.Errorf("job %d ran %v before its run-at", r.seq, -r.late)
		}
	}
	for _, r := range e.log.snapshot() {
		if d := r.began.Sub(r.args.RunAt); d < 0 {
			t.Errorf("job %d ran %v before its run-at", r.args.Seq, -d)
		}
	}
	perID := map[string]int{}
	for _, r := range e.env.ReadAll(t, e.topic) {
		perID[headerOf(r, jobs.HeaderJobID)]++
	}
	dispatchedTwice := 0
	for _, n := range perID {
		dispatchedTwice += n - 1
	}
	runTwice := 0
	for _, n := range ran() {
		runTwice += n - 1
	}
	if len(perID) != total {
		t.Errorf("%d jobs reached the job topic, want %d", len(perID), total)
	}
	if dispatchedTwice > unconfirmed {
		t.Errorf("%d jobs were dispatched again; only the %d dispatched and not tombstoned at the kill may be", dispatchedTwice, unconfirmed)
	}
	t.Logf("at the kill: %d dispatched, %d of them not tombstoned; dispatched again: %d; runs repeated (dispatch and job-topic redelivery): %d",
		len(dispatched), unconfirmed, dispatchedTwice, runTwice)
}

func TestPeriodicJobFiresEveryTickOnceAcrossAKillOfItsOwner(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 2, 2)
	spec := childSpec{Brokers: e.env.Brokers, Topic: e.topic, Group: e.env.Group(t), Periodic: "@every 1s"}
	children := []*child{startChild(t, spec), startChild(t, spec), startChild(t, spec)}
	ticksRun := func() map[string]int {
		out := map[string]int{}
		for _, c := range children {
			for _, r := range c.tickRuns() {
				out[r.tick]++
			}
		}
		return out
	}
	kafkatest.WaitFor(t, time.Minute, "three ticks to run", func() bool { return len(ticksRun()) >= 3 })
	// Kill the one that fires: the owner of schedules partition 0.
	var owner *child
	kafkatest.WaitFor(t, 30*time.Second, "one child to own schedules partition 0", func() bool {
		owner = nil
		for _, c := range children {
			if slices.Contains(c.owned(), 0) {
				if owner != nil {
					return false
				}
				owner = c
			}
		}
		return owner != nil
	})
	killedAt := time.Now()
	owner.kill(t)
	// The next owner first fires the ticks missed since the kill, then
	// each as it comes: wait until ticks have run for three seconds past
	// the first one after the kill.
	var want int
	kafkatest.WaitFor(t, time.Minute, "ticks to run for 3 s after the takeover", func() bool {
		var first, last time.Time
		for _, c := range children {
			for _, r := range c.tickRuns() {
				if r.seen.After(killedAt) && (first.IsZero() || r.seen.Before(first)) {
					first = r.seen
				}
				if r.seen.After(last) {
					last = r.seen
				}
			}
		}
		want = len(ticksRun())
		return !first.IsZero() && last.Sub(first) >= 3*time.Second
	})
	stopping := time.Now()
	for _, c := range children {
		if c != owner {
			c.stop(t)
		}
	}

	fired := map[string][]string{} // tick → the job ids enqueued for it
	for _, r := range e.env.ReadAll(t, e.topic) {
		if tick := headerOf(r, jobs.HeaderPeriodicTick); tick != "" {
			fired[tick] = append(fired[tick], headerOf(r, jobs.HeaderJobID))
		}
	}
	ticks := slices.Sorted(func(yield func(string) bool) {
		for tick := range fired {
			if !yield(tick) {
				return
			}
		}
	})
	runs := ticksRun()
	var twice []string
	for i, tick := range ticks {
		at, err := time.Parse(time.RFC3339Nano, tick)
		if err != nil {
			t.Fatal(err)
		}
		if at.Truncate(time.Second) != at {
			t.Errorf("tick %s is not on a second", tick)
		}
		if i > 0 {
			if prev, _ := time.Parse(time.RFC3339Nano, ticks[i-1]); at.Sub(prev) != time.Second {
				t.Errorf("ticks from %s to %s were skipped", ticks[i-1], tick)
			}
		}
		ids := fired[tick]
		if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 1 {
			t.Errorf("tick %s was fired with different job ids %v", tick, ids)
		}
		if len(ids) > 1 {
			twice = append(twice, tick)
			// Only a tick fired and not yet recorded when its owner
			// died is fired again.
			if at.Before(killedAt.Add(-2*time.Second)) || at.After(killedAt.Add(time.Second)) {
				t.Errorf("tick %s was fired %d times, and not at the kill (%s)", tick, len(ids), killedAt.UTC().Format(time.RFC3339Nano))
			}
		}
		// A tick due in the last seconds before the servers stopped may
		// have been enqueued and not yet run: it runs when a server
		// comes back. Every earlier one must have run.
		if runs[tick] == 0 && at.Before(stopping.Add(-2*time.Second)) {
			t.Errorf("tick %s was fired and never ran (the servers stopped at %s)", tick, stopping.UTC().Format(time.RFC3339Nano))
		}
	}
	if len(twice) > 1 {
		t.Errorf("ticks %v were fired twice; the kill may repeat one", twice)
	}
	if len(ticks) < want {
		t.Errorf("%d ticks fired, want the %d that ran or more", len(ticks), want)
	}
	t.Logf("%d ticks, from %s to %s, killed at %s; fired twice: %v", len(ticks), ticks[0], ticks[len(ticks)-1],
		killedAt.UTC().Format(time.RFC3339Nano), twice)
}

func TestPeriodicTicksMissedWhileNoServerRanRunOnceOrAreSkipped(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 1, 1)
	ctx := context.Background()
	// Both jobs last fired two minutes ago, as if every server had been
	// down since.
	last := time.Now().Add(-2 * time.Minute).Truncate(time.Second).UTC()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.env.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for _, name := range []string{"once", "skip"} {
		if _, err := producer.ProduceSync(ctx, kafka.Message{Topic: e.topic + jobs.DefaultScheduleSuffix,
			Key: []byte("ordo-periodic/" + name), Value: []byte(last.Format(time.RFC3339Nano)),
			Headers: []kafka.Header{{Key: "ordo-periodic", Value: []byte("1")}}}); err != nil {
			t.Fatal(err)
		}
	}
	ws := jobs.NewWorkers()
	var mu sync.Mutex
	ran := map[string][]time.Time{} // name → ticks
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[tickArgs]) error {
		for _, h := range j.Headers {
			if h.Key == jobs.HeaderPeriodicTick {
				tick, err := time.Parse(time.RFC3339Nano, string(h.Value))
				if err != nil {
					return err
				}
				mu.Lock()
				ran[string(j.Key)] = append(ran[string(j.Key)], tick)
				mu.Unlock()
			}
		}
		return nil
	}))
	cfg := e.config(t, ws)
	cfg.Periodic = []jobs.PeriodicJob{
		jobs.Periodic("@every 1s", tickArgs{}, jobs.PeriodicName("once"), jobs.WithKey("once")),
		jobs.Periodic("@every 1s", tickArgs{}, jobs.PeriodicName("skip"), jobs.WithKey("skip"),
			jobs.PeriodicMissedTicks(jobs.MissedSkip)),
	}
	started := time.Now()
	startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "both jobs to run a tick after the start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(ran["once"], started.Before) && slices.ContainsFunc(ran["skip"], started.Before)
	})
	mu.Lock()
	defer mu.Unlock()
	// Ticks older than SessionTimeout + RebalanceTimeout at the start were
	// missed while no server ran; younger ones could be a failover's, and
	// each runs.
	window := started.Add(-(cfg.SessionTimeout + cfg.RebalanceTimeout))
	for name, want := range map[string][]time.Time{"once": {last.Add(time.Second)}, "skip": nil} {
		ticks := slices.SortedFunc(slices.Values(ran[name]), time.Time.Compare)
		var missed, caughtUp []time.Time
		for _, tick := range ticks {
			if tick.Before(window.Add(-time.Second)) {
				missed = append(missed, tick)
			} else {
				caughtUp = append(caughtUp, tick)
			}
		}
		if !slices.EqualFunc(missed, want, time.Time.Equal) {
			t.Errorf("%s ran the missed ticks %v; want %v", name, missed, want)
		}
		for i := 1; i < len(caughtUp); i++ {
			if caughtUp[i].Sub(caughtUp[i-1]) != time.Second {
				t.Errorf("%s skipped ticks between %v and %v", name, caughtUp[i-1], caughtUp[i])
			}
		}
		// The window starts when the server first fires, a few seconds
		// after the start at most.
		if len(caughtUp) == 0 || caughtUp[0].After(window.Add(5*time.Second)) {
			t.Errorf("%s did not run each tick of the failover window from %v: %v", name, window, caughtUp)
		}
	}
}
