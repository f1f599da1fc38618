package jobs_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// drainArgs is a job that keeps its key, and its partition's drain, busy for
// a while.
type drainArgs struct {
	Key string `msgpack:"key"`
}

func (drainArgs) Kind() string                      { return "drain-hold" }
func (a drainArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// dueRun is one run of a timedArgs job, with the job partition it ran from.
type dueRun struct {
	seq       int
	partition int
	late      time.Duration
}

// A cooperative server whose group gains a member keeps dispatching the
// schedules partitions it keeps while the partitions that move are drained:
// the schedules partitions are the server's group's, not a second, eager
// group's that stops every dispatch at every rebalance. Here the rebalance
// lasts seconds (the job partitions that move each drain a job of 3 s);
// jobs due meanwhile, on a schedules partition and a job partition the first
// server keeps, run within 2 s of their run-at. Under the former
// dispatcher group they waited for the whole rebalance.
func TestACooperativeServerKeepsDispatchingTheSchedulesPartitionsItKeepsThroughARebalance(t *testing.T) {
	t.Parallel()
	const hold = 3 * time.Second
	e := newScheduleEnv(t, 4, 4)
	var mu sync.Mutex
	var runs []dueRun
	var holding atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[timedArgs]) error {
		mu.Lock()
		runs = append(runs, dueRun{seq: j.Args.Seq, partition: j.Partition, late: time.Since(j.Args.RunAt)})
		mu.Unlock()
		return nil
	}))
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[drainArgs]) error {
		holding.Add(1)
		defer holding.Add(-1)
		select { // the work whose drain the rebalance waits for
		case <-time.After(hold):
		case <-ctx.Done():
		}
		return nil
	}))
	cfg := serverConfig(t, e.env, e.topic, ws)
	cfg.Schedules = jobs.SchedulesOn
	cfg.Rebalance = jobs.RebalanceCooperative
	cfg.Concurrency = 64
	first := startJobServer(t, cfg)
	waitReady(t, first)

	// Jobs due every 20 ms over the next 8 s, on keys that reach every
	// partition; each one's schedules partition is known from its enqueue.
	ctx := context.Background()
	base := time.Now().Add(time.Second)
	var params []jobs.EnqueueParams
	for i := range 400 {
		runAt := base.Add(time.Duration(i) * 20 * time.Millisecond)
		params = append(params, jobs.EnqueueParams{Args: timedArgs{Key: "k" + strconv.Itoa(i%40), Seq: i, RunAt: runAt},
			Opts: []jobs.EnqueueOption{jobs.WithRunAt(runAt)}})
	}
	infos, err := e.client.EnqueueMany(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	// Every job partition drains a held job when it moves.
	var holds []jobs.EnqueueParams
	for i := range 32 {
		holds = append(holds, jobs.EnqueueParams{Args: drainArgs{Key: "hold-" + strconv.Itoa(i)}})
	}
	kafkatest.WaitFor(t, 10*time.Second, "the first due jobs to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) > 0
	})
	if _, err := e.client.EnqueueMany(ctx, holds); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 10*time.Second, "the held jobs to run", func() bool { return holding.Load() == int64(len(holds)) })

	// Watch the first server's schedules partitions through the
	// rebalance: one it keeps must never be given up and read again.
	keptAll := map[int]bool{}
	for _, s := range first.Schedules() {
		keptAll[s.Partition] = true
	}
	gaps := map[int]string{} // by partition: what the watcher saw, and when
	watching, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watching:
				return
			case <-tick.C:
			}
			now := map[int]jobs.ScheduleStats{}
			for _, s := range first.Schedules() {
				now[s.Partition] = s
			}
			for p := range keptAll {
				s, ok := now[p]
				if ok && !s.Reading || gaps[p] != "" {
					continue // once is enough
				}
				what := "not dispatched"
				if ok {
					what = "read again"
				}
				gaps[p] = fmt.Sprintf("partition %d %s at %v", p, what, time.Now().Format("15:04:05.000"))
			}
		}
	}()

	joined := time.Now()
	second := startJobServer(t, cfg)
	kafkatest.WaitFor(t, 30*time.Second, "the second server to get its half of each topic", func() bool {
		return len(second.Stats()) == 2 && len(second.Schedules()) == 2
	})
	settled := time.Now()
	close(watching)
	<-watched
	kafkatest.WaitFor(t, 30*time.Second, "every due job to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) >= len(params)
	})

	keptSchedules, keptJobs := map[int]bool{}, map[int]bool{}
	for _, s := range first.Schedules() {
		keptSchedules[s.Partition] = true
	}
	for _, s := range first.Stats() {
		keptJobs[s.Partition] = true
	}
	if len(keptSchedules) == 0 || len(keptJobs) == 0 {
		t.Fatalf("the first server kept schedules partitions %v and job partitions %v; the test needs one of each", keptSchedules, keptJobs)
	}
	if took := settled.Sub(joined); took < hold/2 {
		t.Fatalf("the rebalance took %v, not the drain of %v the test relies on", took, hold)
	}
	for p, g := range gaps {
		if keptSchedules[p] {
			t.Errorf("during the rebalance, schedules %s, though the first server kept it", g)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var during []time.Duration
	for _, r := range runs {
		runAt := params[r.seq].Args.(timedArgs).RunAt
		if runAt.Before(joined) || runAt.After(settled) || !keptSchedules[infos[r.seq].Partition] || !keptJobs[r.partition] {
			continue
		}
		during = append(during, r.late)
		if r.late > 2*time.Second {
			t.Errorf("job %d, due %v into a rebalance of %v on schedules partition %d that the first server kept, ran %v late",
				r.seq, runAt.Sub(joined).Round(time.Millisecond), settled.Sub(joined).Round(time.Millisecond), infos[r.seq].Partition, r.late)
		}
	}
	if len(during) < 10 {
		t.Fatalf("only %d jobs were due during the rebalance on partitions kept; the test needs more", len(during))
	}
	t.Logf("rebalance %v; %d jobs due meanwhile on kept partitions, lateness %s; kept schedules %v, jobs %v",
		settled.Sub(joined).Round(time.Millisecond), len(during), quantiles(during), keptSchedules, keptJobs)
}

func waitReady(t *testing.T, s *jobs.Server) {
	t.Helper()
	select {
	case <-s.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the server never became ready")
	}
}

// A server is one member of one group: its schedules partitions are
// assigned and committed in Config.Group beside its job partitions, and the
// former schedules group (Group + DefaultScheduleGroupSuffix) gets no
// commits. A deployment upgraded from it starts each schedules partition
// where that group left it: a job below that offset (dispatched and
// tombstoned, in a real log; here left in place to tell) is not dispatched
// again, and one above it is.
func TestSchedulesPartitionsAreCommittedInTheServersGroupAndCarryOverTheFormerGroupsOffsets(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 1, 1)
	cfg := e.config(t, nil)
	ctx := context.Background()
	st := e.topic + jobs.DefaultScheduleSuffix
	scheduled := func(info jobs.JobInfo, err error) jobs.JobInfo {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if info.RunAt.IsZero() {
			t.Fatalf("job %s was enqueued to run now, not scheduled: its run-at passed during the enqueue", info.ID)
		}
		return info
	}
	due := time.Now().Add(2 * time.Second)
	old := scheduled(e.client.Enqueue(ctx, timedArgs{Key: "old", Seq: 1, RunAt: due}, jobs.WithRunAt(due)))
	// The former group committed past the old job: it was dispatched.
	former := cfg.Group + jobs.DefaultScheduleGroupSuffix
	commitAs(t, e.env, former, st, 0, old.Offset+1)
	server := startJobServer(t, cfg)
	var got map[int]int64
	var gotErr error
	defer func() {
		if t.Failed() {
			t.Logf("the server's group committed %v (%v); the server dispatches %+v", got, gotErr, server.Schedules())
		}
	}()
	// The carried-over offset becomes the server's group's own, though
	// nothing was read after it.
	kafkatest.WaitFor(t, 30*time.Second, "the server's group to commit the offset it carried over", func() bool {
		got, gotErr = e.env.Admin.CommittedOffsets(ctx, cfg.Group, st)
		return gotErr == nil && got[0] == old.Offset+1
	})
	// Due after old, so that old would have been dispatched before it.
	due = time.Now().Add(time.Second)
	if after := old.RunAt.Add(500 * time.Millisecond); due.Before(after) {
		due = after
	}
	fresh := scheduled(e.client.Enqueue(ctx, timedArgs{Key: "new", Seq: 2, RunAt: due}, jobs.WithRunAt(due)))
	kafkatest.WaitFor(t, 30*time.Second, "the job enqueued after the former group's offset to run", func() bool { return e.log.ran(fresh.ID) })
	kafkatest.WaitFor(t, 30*time.Second, "the server's group to commit past it", func() bool {
		got, gotErr = e.env.Admin.CommittedOffsets(ctx, cfg.Group, st)
		return gotErr == nil && got[0] > fresh.Offset
	})
	if e.log.ran(old.ID) {
		t.Errorf("the job below the former schedules group's offset %d was dispatched again", old.Offset+1)
	}
	if got, err := e.env.Admin.CommittedOffsets(ctx, former, st); err != nil || got[0] != old.Offset+1 {
		t.Errorf("the former schedules group's offset is %v (%v), want it left at %d", got, err, old.Offset+1)
	}
}

// commitAs commits offset for group on topic's partition, as a member of
// that group that joins, commits and leaves.
func commitAs(t *testing.T, env *kafkatest.Env, group, topic string, partition int, offset int64) {
	t.Helper()
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	committed := make(chan error, 1)
	runErr := c.Run(ctx, func(s *kafka.Session) {
		committed <- s.Commit(ctx, kafka.Offset{Topic: topic, Partition: partition, Offset: offset})
		cancel()
		<-s.Done()
	})
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("committing as group %s: never joined: %v", group, runErr)
	}
}

// A static server stopped and started again within the session timeout gets
// its partitions back, schedules partitions included, without a rebalance
// of the other server, and dispatches the jobs due after it is back: none
// early, none lost.
func TestAStaticServerRestartedWithinTheSessionResumesDispatchWithoutRebalancingTheOthers(t *testing.T) {
	t.Parallel()
	e := newScheduleEnv(t, 2, 2)
	cfg := e.config(t, nil)
	cfg.SessionTimeout, cfg.RebalanceTimeout = 10*time.Second, 10*time.Second
	start := func(id string) *jobs.Server {
		c := cfg
		c.InstanceID = id
		s := startJobServer(t, c)
		waitReady(t, s)
		return s
	}
	// Started one after the other, so the first leads: a static leader
	// that restarts rebalances the group on the join versions kafka-go
	// speaks (see TestStaticServerRestartsWithoutRebalancingTheOthers).
	leader := start("ordo-0")
	restarting := start("ordo-1")
	kafkatest.WaitFor(t, 30*time.Second, "the two servers to split both topics", func() bool {
		return len(leader.Schedules()) == 1 && len(restarting.Schedules()) == 1 && len(leader.Stats()) == 1 && len(restarting.Stats()) == 1
	})
	before := leader.Rebalances()

	ctx := context.Background()
	if err := restarting.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := start("ordo-1")
	due := time.Now().Add(500 * time.Millisecond)
	var params []jobs.EnqueueParams
	for i := range 100 {
		params = append(params, jobs.EnqueueParams{Args: timedArgs{Key: "k" + strconv.Itoa(i), Seq: i, RunAt: due},
			Opts: []jobs.EnqueueOption{jobs.WithRunAt(due)}})
	}
	if _, err := e.client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 30*time.Second, "every job due after the restart to run", func() bool { return e.log.len() >= len(params) })
	if got := len(restarted.Schedules()); got != 1 {
		t.Errorf("the restarted server dispatches %d schedules partitions, want its 1 back", got)
	}
	if after := leader.Rebalances(); after != before {
		t.Errorf("the other server went from %d to %d assignments: the restart rebalanced it", before, after)
	}
	for _, r := range e.log.snapshot() {
		if r.began.Before(r.args.RunAt) {
			t.Errorf("job %d ran %v before its run-at", r.args.Seq, r.args.RunAt.Sub(r.began))
		}
	}
}
