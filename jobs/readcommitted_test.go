package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// Jobs written by another service's transactional producer run once each,
// in order per key, when their transaction commits, and never when it
// aborts, also when the aborted transaction's jobs sit between the
// committed ones on the partition.
func TestJobsOfAbortedTransactionsNeverRun(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	log := newSeqLog()
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[kindA]) error { log.run(j.Args.seqArgs, nil); return nil }))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	job := func(key string, seq int) kafka.Message {
		m, _, err := enqueue.Prepare(topic, kindA{seqArgs{Key: key, Seq: seq}}, &enqueue.Options{}, time.Now().UTC(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	w := env.NewTxnWriter(t, topic, 0)
	w.Plain(ctx, t, job("a", 0))
	committed := w.Begin(ctx, t, "committed")
	committed.Write(ctx, t, job("a", 1), job("b", 0))
	aborted := w.Begin(ctx, t, "aborted")
	aborted.Write(ctx, t, job("a", 100), job("b", 100)) // seq 100+: would break the order and the counts
	w.Plain(ctx, t, job("b", 1))
	committed.Write(ctx, t, job("a", 2))
	aborted.Write(ctx, t, job("b", 101))
	aborted.End(ctx, t, false)
	committed.End(ctx, t, true)
	last := w.Plain(ctx, t, job("a", 3), job("b", 2))

	cfg := serverConfig(t, env, topic, ws)
	startJobServer(t, cfg)
	// Every record up to the last is handled once the group commits past
	// it: an aborted job run by then is in the log.
	kafkatest.WaitFor(t, 30*time.Second, "the group to commit past the last job", func() bool {
		c, err := env.Admin.CommittedOffsets(ctx, cfg.Group, topic)
		return err == nil && c[0] > last+1
	})
	log.check(t, map[string]int{"a": 4, "b": 3})
}
