package jobs_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

// Three static servers; one is stopped and started again within the session
// timeout while jobs run. The other two are never rebalanced (their
// generation count does not move), the restarted one resumes from the
// committed offsets, and every job runs once, in order per key.
func TestStaticServerRestartsWithoutRebalancingTheOthers(t *testing.T) {
	t.Parallel()
	const keys, perKey = 30, 60
	env := kafkatest.New(t)
	topic := env.Topic(t, 6)
	log := newSeqLog()
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindA]) error {
		log.run(j.Args.seqArgs, func() { time.Sleep(time.Millisecond) })
		return nil
	}))
	cfg := serverConfig(t, env, topic, ws)
	cfg.SessionTimeout, cfg.RebalanceTimeout = 10*time.Second, 10*time.Second
	start := func(i int) *jobs.Server {
		c := cfg
		c.InstanceID = "ordo-" + strconv.Itoa(i)
		s, err := jobs.NewServer(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.StopAndLeave(context.Background()) })
		select {
		case <-s.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("server %d never got an assignment", i)
		}
		return s
	}
	// Started one after the other, so the first is the leader: a static
	// leader that restarts rebalances the group on the join versions
	// kafka-go speaks (see kafka's TestStaticMemberRestarts...).
	servers := []*jobs.Server{start(0), start(1), start(2)}
	settled := func() bool {
		total, gen := 0, int32(-1)
		for _, s := range servers {
			for _, p := range s.Stats() {
				if gen == -1 {
					gen = p.Generation
				}
				if p.Generation != gen {
					return false
				}
				total++
			}
		}
		return total == 6
	}
	kafkatest.WaitFor(t, 30*time.Second, "the three servers to share the six partitions", settled)

	client := newClient(t, env, topic)
	ctx := context.Background()
	enqueue := func(from, to int) {
		var params []jobs.EnqueueParams
		for seq := from; seq < to; seq++ {
			for k := range keys {
				params = append(params, jobs.EnqueueParams{Args: kindA{seqArgs{Key: "k" + strconv.Itoa(k), Seq: seq}}})
			}
		}
		if _, err := client.EnqueueMany(ctx, params); err != nil {
			t.Fatal(err)
		}
	}
	enqueue(0, perKey/2)
	kafkatest.WaitFor(t, 30*time.Second, "jobs to be running", func() bool { return log.runs.Load() >= keys*perKey/8 })

	rebalances := []int64{servers[0].Rebalances(), servers[1].Rebalances()}
	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := servers[2].Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	enqueue(perKey/2, perKey)
	servers[2] = start(2)
	kafkatest.WaitFor(t, 60*time.Second, "every job to run", func() bool { return log.runs.Load() >= keys*perKey })

	for i, before := range rebalances {
		if got := servers[i].Rebalances(); got != before {
			t.Errorf("server %d went through %d rebalances while server 2 restarted; want none", i, got-before)
		}
	}
	want := map[string]int{}
	for k := range keys {
		want["k"+strconv.Itoa(k)] = perKey
	}
	log.check(t, want)
	if !settled() {
		t.Error(fmt.Sprint("after the restart the servers do not share the six partitions in one generation: ",
			servers[0].Stats(), servers[1].Stats(), servers[2].Stats()))
	}
}
