package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// logCapture is a slog destination tests can read back, echoing each line
// into the test's output as it is written.
type logCapture struct {
	kafkatest.Log
	t testing.TB
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.t.Log(strings.TrimSpace(string(p)))
	return c.Log.Write(p)
}

// count returns how many log lines contain every one of parts.
func (c *logCapture) count(parts ...string) int { return len(c.Matching(parts...)) }

func captureLogs(t testing.TB, level slog.Level) (*slog.Logger, *logCapture) {
	c := &logCapture{t: t}
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: level})), c
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// A server whose broker cannot be reached does not hang silently: Start
// keeps checking the topics with a logged, growing back-off until its context
// ends, then returns an error naming the cause, and Stop returns promptly.
func TestUnreachableBrokerIsRetriedWithBackoffAndLogged(t *testing.T) {
	t.Parallel()
	logger, logs := captureLogs(t, slog.LevelWarn)
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[seqArgs0]) error { return nil }))
	addr := closedAddr(t)
	s, err := jobs.NewServer(jobs.Config{
		Brokers: []string{addr}, Group: "unreachable", Topics: []string{"jobs"}, Workers: ws,
		Backoff:           supervision.Backoff{Initial: 100 * time.Millisecond, Max: time.Second},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Start(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Start against a closed port returned %v; want its context's deadline and the cause", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Start took %v with a 3 s context", took)
	}
	out := logs.String()
	if logs.count("checking the topics failed; retrying", addr) < 3 {
		t.Errorf("fewer than three logged retries naming the broker %s:\n%s", addr, out)
	}
	// The backoff grows: 100ms, 200ms, 400ms...
	if logs.count("retry_in=100ms") == 0 || logs.count("retry_in=200ms") == 0 {
		t.Errorf("retries do not back off (want retry_in=100ms then 200ms):\n%s", out)
	}
	stopStart := time.Now()
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer stopCancel()
	if err := s.Stop(stopCtx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if d := time.Since(stopStart); d > time.Second {
		t.Errorf("Stop took %v with the broker down", d)
	}
}

// An enqueue against an unreachable broker fails within its context with
// an error that says so, rather than hanging.
func TestEnqueueToAnUnreachableBrokerFailsWithinItsDeadline(t *testing.T) {
	t.Parallel()
	c, err := jobs.NewClient(jobs.ClientConfig{Brokers: []string{closedAddr(t)}, Topic: "jobs", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err = c.Enqueue(ctx, seqArgs0{seqArgs{Key: "k"}})
	if err == nil {
		t.Fatal("enqueue to an unreachable broker succeeded")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("enqueue took %v to fail with a 3s deadline", d)
	}
	t.Logf("enqueue failed after %v: %v", time.Since(start), err)
}

type seqArgs0 struct{ seqArgs }

func (seqArgs0) Kind() string { return "fault_seq" }

// When the dead-letter write fails (here: the dead-letter topic was
// deleted after the start, a failure that may pass when tried again), the
// record is not committed (the committed offset stays below it), the write
// is retried and logged, and other keys go on. A refusal that cannot pass
// is not retried forever: see
// TestADeadLetterRefusedEvenWithoutItsArgsIsLoggedAndTheKeyMovesOn.
func TestFailingDeadLetterWriteIsRetriedAndNeverCommitted(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, dlqTopic := env.Topic(t, 1), env.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var ran sync.Map
	var runs atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[seqArgs0]) error {
		ran.Store(j.Args.Key, true)
		runs.Add(1)
		return nil
	}))
	client := newClient(t, env, topic)
	if _, err := client.Enqueue(ctx, seqArgs0{seqArgs{Key: "before"}}); err != nil { // offset 0
		t.Fatal(err)
	}
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	logger, logs := captureLogs(t, slog.LevelWarn)
	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlqTopic
	cfg.Logger = logger
	cfg.Backoff = supervision.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.ShutdownTimeout = 2 * time.Second
	s, err := jobs.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, time.Minute, "the first job to run", func() bool { return runs.Load() == 1 })
	deleteTopic(ctx, t, env, dlqTopic)
	// Offset 1: 0xc1 is never valid msgpack, so this goes to the dead letters.
	poison := bytes.Repeat([]byte{0xc1}, 500)
	if err := p.Produce(ctx, kafka.Message{Topic: topic, Key: []byte("poison"), Value: poison}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, seqArgs0{seqArgs{Key: "after"}}); err != nil { // offset 2
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, time.Minute, "both good jobs, around the poison record, to run", func() bool { return runs.Load() == 2 })
	kafkatest.WaitFor(t, time.Minute, "three logged dead-letter retries", func() bool {
		return logs.count("dead-letter write failed; retrying", "offset=1") >= 3
	})
	committed := func() int64 {
		offs, err := env.Admin.CommittedOffsets(ctx, cfg.Group, topic)
		if err != nil {
			t.Fatal(err)
		}
		return offs[0]
	}
	kafkatest.WaitFor(t, 30*time.Second, "offset 0 to be committed", func() bool { return committed() == 1 })
	// One more failed dead-letter write (each takes the server's 1 s wait
	// for the missing topic), then a job enqueued after it: the commit
	// that marks that job finished is made after the attempt, and its
	// watermark must still be at the record never dead-lettered.
	retried := logs.count("dead-letter write failed; retrying", "offset=1")
	kafkatest.WaitFor(t, time.Minute, "one more logged dead-letter retry", func() bool {
		return logs.count("dead-letter write failed; retrying", "offset=1") > retried
	})
	if _, err := client.Enqueue(ctx, seqArgs0{seqArgs{Key: "later"}}); err != nil { // offset 3
		t.Fatal(err)
	}
	waitCommitMarksFinished(t, env, cfg.Group, topic, 1, 3)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer stopCancel()
	err = s.Stop(stopCtx)
	t.Logf("Stop: %v", err)
	if c := committed(); c != 1 {
		t.Errorf("after Stop the committed offset is %d, want 1: the record that was never dead-lettered must run again", c)
	}
	if strings.Contains(logs.String(), "job dead-lettered") {
		t.Error("a dead letter was reported written to a topic that refuses it")
	}
}

// deleteTopic deletes topic and waits until the broker no longer lists it.
func deleteTopic(ctx context.Context, t *testing.T, env *kafkatest.Env, topic string) {
	t.Helper()
	if err := env.Admin.DeleteTopics(ctx, topic); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, time.Minute, "topic "+topic+" to be gone", func() bool {
		have, err := env.Admin.Partitions(ctx, topic)
		return err == nil && have[topic] == 0
	})
}
