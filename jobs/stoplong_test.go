package jobs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

// graceWorker runs until its context ends, noting when it first saw its
// partition revoked and when its context was cancelled.
type graceWorker struct {
	jobs.WorkerDefaults[longArgs]
	started              chan struct{}
	sawRevoked, canceled atomic.Int64 // unix nanos
}

func (*graceWorker) LongRunning() bool { return true }

func (w *graceWorker) Work(ctx context.Context, j *jobs.Job[longArgs]) error {
	close(w.started)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			w.canceled.Store(time.Now().UnixNano())
			return ctx.Err()
		case <-tick.C:
			if jobs.Revoked(ctx) && w.sawRevoked.Load() == 0 {
				w.sawRevoked.Store(time.Now().UnixNano())
			}
		}
	}
}

// Stop gives a long-running job LongRunningGrace: the job sees Revoked(ctx)
// at once, its context is cancelled only when the grace is over, and Stop
// returns once the job has stopped.
func TestStopGivesLongRunningJobsTheirGrace(t *testing.T) {
	t.Parallel()
	const grace = time.Second
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	w := &graceWorker{started: make(chan struct{})}
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.Worker[longArgs](w))
	cfg := serverConfig(t, env, topic, ws)
	cfg.LongRunningGrace = grace
	s := startJobServer(t, cfg)
	if _, err := newClient(t, env, topic).Enqueue(context.Background(), longArgs{Key: "k", Millis: 60_000}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the long job did not start")
	}
	stopping := time.Now()
	if err := s.Stop(context.Background()); err != nil {
		t.Logf("Stop: %v", err)
	}
	stopped := time.Since(stopping)
	saw, canceled := w.sawRevoked.Load(), w.canceled.Load()
	if saw == 0 {
		t.Fatal("the long job never saw Revoked(ctx) during Stop")
	}
	if d := time.Duration(saw - stopping.UnixNano()); d > grace/2 {
		t.Errorf("the long job saw Revoked(ctx) %v after Stop began; want at once", d)
	}
	if canceled == 0 {
		t.Fatal("Stop returned while the long job's context was still live")
	}
	if d := time.Duration(canceled - stopping.UnixNano()); d < grace*9/10 || d > grace+time.Second {
		t.Errorf("the long job's context was cancelled %v after Stop began; want after the %v grace", d, grace)
	}
	if stopped > grace+2*time.Second {
		t.Errorf("Stop took %v with a %v grace", stopped, grace)
	}
	t.Logf("revoked seen after %v, cancelled after %v, Stop returned after %v",
		time.Duration(saw-stopping.UnixNano()), time.Duration(canceled-stopping.UnixNano()), stopped)
}
