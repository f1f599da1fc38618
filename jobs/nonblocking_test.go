package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// These tests hold the runtime to its promise that a key that waits holds
// nothing else up: not a concurrency slot, not another key, not a
// revocation, not its partition.

type holdArgs struct {
	Key  string `msgpack:"key"`
	Mode string `msgpack:"mode"` // "ok", "permanent", "backoff"
	Seq  int    `msgpack:"seq"`
}

func (holdArgs) Kind() string                      { return "hold" }
func (a holdArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// Concurrency+1 jobs on distinct keys fail permanently while their
// dead-letter topic cannot be written (it was deleted after the start, a
// failure that may pass when tried again). Other keys run to completion
// meanwhile, the held jobs are not committed, and once the topic is back
// they are dead-lettered and committed.
func TestUnwritableDeadLettersHoldOnlyTheirKeys(t *testing.T) {
	t.Parallel()
	const concurrency, good = 2, 300
	env := kafkatest.New(t)
	topic, dlq := env.Topic(t, 1), env.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var goodRuns, badRuns atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[holdArgs]) error {
		if j.Args.Mode == "permanent" {
			badRuns.Add(1)
			return jobs.Permanent(errors.New("this job can never succeed"))
		}
		goodRuns.Add(1)
		return nil
	}))
	logger, logs := captureLogs(t, slog.LevelWarn)
	cfg := serverConfig(t, env, topic, ws)
	cfg.Concurrency = concurrency
	cfg.DeadLetterTopic = dlq
	cfg.Logger = logger
	cfg.Backoff = supervision.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}
	cfg.CommitInterval = 100 * time.Millisecond
	startJobServer(t, cfg)
	deleteTopic(ctx, t, env, dlq)

	client := newClient(t, env, topic)
	var params []jobs.EnqueueParams
	for i := range concurrency + 1 { // offsets 0..concurrency: one bad job per key
		params = append(params, jobs.EnqueueParams{Args: holdArgs{Key: "bad-" + strconv.Itoa(i), Mode: "permanent"}})
	}
	for i := range good {
		params = append(params, jobs.EnqueueParams{Args: holdArgs{Key: "good-" + strconv.Itoa(i%30), Mode: "ok", Seq: i}})
	}
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}

	kafkatest.WaitFor(t, time.Minute, "every good job to run while the dead letters cannot be written", func() bool {
		return goodRuns.Load() == good
	})
	if n := badRuns.Load(); n != concurrency+1 {
		t.Errorf("the bad jobs ran %d times, want %d (once each: permanent)", n, concurrency+1)
	}
	kafkatest.WaitFor(t, time.Minute, "failed dead-letter writes to be logged", func() bool {
		return logs.count("dead-letter write failed; retrying", "offset=0") >= 2
	})
	committed := func() int64 {
		offs, err := env.Admin.CommittedOffsets(ctx, cfg.Group, topic)
		if err != nil {
			t.Fatal(err)
		}
		return offs[0]
	}
	if c := committed(); c > 0 {
		t.Fatalf("committed %d while the job at offset 0 was not dead-lettered", c)
	}

	// A real broker may refuse the name for a moment after the deletion.
	kafkatest.WaitFor(t, time.Minute, "the dead-letter topic to be created again", func() bool {
		return env.Admin.CreateTopics(ctx, kafka.Topic{Name: dlq, Partitions: 1}) == nil
	})
	end := int64(concurrency + 1 + good)
	kafkatest.WaitFor(t, time.Minute, "the held jobs to be dead-lettered and everything committed", func() bool {
		return committed() == end
	})
	letters := env.ReadAll(t, dlq)
	if len(letters) != concurrency+1 {
		t.Fatalf("%d dead letters, want %d", len(letters), concurrency+1)
	}
	for _, r := range letters {
		if got := headerOf(r, jobs.HeaderSourceOffset); got == "" || headerOf(r, jobs.HeaderError) == "" {
			t.Errorf("dead letter %s lacks its source offset or error headers", r.Key)
		}
	}
}

// With one slot, a job in a long back-off does not keep another key's jobs
// from running: the waiting key holds no slot.
func TestAKeyInBackOffUsesNoSlot(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	var retries, others atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[holdArgs]) error {
		if j.Args.Mode == "backoff" {
			retries.Add(1)
			return jobs.RetryAfter(time.Minute, errors.New("not yet"))
		}
		others.Add(1)
		return nil
	}))
	client := newClient(t, env, topic)
	ctx := context.Background()
	params := []jobs.EnqueueParams{{Args: holdArgs{Key: "waits", Mode: "backoff"}}}
	for i := range 100 {
		params = append(params, jobs.EnqueueParams{Args: holdArgs{Key: "other-" + strconv.Itoa(i%10), Mode: "ok", Seq: i}})
	}
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.Concurrency = 1
	s := startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "the other key's jobs to run during the back-off", func() bool { return others.Load() == 100 })
	if n := retries.Load(); n != 1 {
		t.Errorf("the job in back-off ran %d times; its minute is not up", n)
	}
	// A revocation reaches the waiting key at once: Stop does not wait for
	// its minute, and the job is not committed.
	began := time.Now()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Stop took %v with a key in a minute's back-off", took)
	}
	offs, err := env.Admin.CommittedOffsets(ctx, cfg.Group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if offs[0] != 0 {
		t.Errorf("committed %d past the job in back-off at offset 0", offs[0])
	}
}

type slowHeadArgs struct {
	Key  string `msgpack:"key"`
	Slow bool   `msgpack:"slow"`
}

func (slowHeadArgs) Kind() string                      { return "slow_head" }
func (a slowHeadArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// A job that runs at the head of a partition until every other job has
// finished, with MaxBuffered at its default: the partition's other keys
// keep finishing jobs throughout, five times MaxBuffered of them, arriving
// in ten batches each enqueued once the one before has finished, and the
// commit waits at the slow job until it finishes.
func TestASlowJobAtTheHeadDoesNotStopItsPartition(t *testing.T) {
	t.Parallel()
	const others, batches = 5000, 10
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	var slowStarted, slowDone atomic.Bool
	var mu sync.Mutex
	var finishedAt []time.Time // of the other jobs, while the slow one ran
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[slowHeadArgs]) error {
		if j.Args.Slow {
			slowStarted.Store(true)
			<-release
			slowDone.Store(true)
			return nil
		}
		if !slowDone.Load() {
			mu.Lock()
			finishedAt = append(finishedAt, time.Now())
			mu.Unlock()
		}
		return nil
	}))
	finished := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(finishedAt)
	}
	client := newClient(t, env, topic)
	ctx := context.Background()
	if _, err := client.Enqueue(ctx, slowHeadArgs{Key: "slow", Slow: true}); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.CommitInterval = 200 * time.Millisecond
	startJobServer(t, cfg)
	kafkatest.WaitFor(t, time.Minute, "the slow job to start", slowStarted.Load)
	began := time.Now()
	committed := func() int64 {
		offs, err := env.Admin.CommittedOffsets(ctx, cfg.Group, topic)
		if err != nil {
			t.Fatal(err)
		}
		return offs[0]
	}
	// The other jobs arrive while the slow one runs, a batch once the
	// batch before has finished.
	for i := 0; i < others; i += others / batches {
		var params []jobs.EnqueueParams
		for k := i; k < i+others/batches; k++ {
			params = append(params, jobs.EnqueueParams{Args: slowHeadArgs{Key: "k-" + strconv.Itoa(k)}})
		}
		if _, err := client.EnqueueMany(ctx, params); err != nil {
			t.Fatal(err)
		}
		kafkatest.WaitFor(t, time.Minute, fmt.Sprintf("the %d jobs enqueued so far to finish beside the slow job", i+others/batches),
			func() bool { return finished() >= i+others/batches })
	}
	if c := committed(); c > 0 {
		t.Errorf("committed offset %d passed the slow job at offset 0 while it ran", c)
	}
	releaseOnce.Do(func() { close(release) })
	kafkatest.WaitFor(t, time.Minute, "the slow job to finish", slowDone.Load)
	mu.Lock()
	during := append([]time.Time(nil), finishedAt...)
	mu.Unlock()
	if len(during) < others {
		t.Fatalf("only %d other jobs finished while the slow one ran; want all %d, well past MaxBuffered (1000)", len(during), others)
	}
	// Throughout: no gap of more than 3 s between completions once the
	// jobs arrived.
	for i := 1; i < len(during); i++ {
		if gap := during[i].Sub(during[i-1]); gap > 3*time.Second {
			t.Errorf("no job finished for %v, %v into the slow job", gap.Round(time.Millisecond), during[i-1].Sub(began).Round(time.Second))
		}
	}
	kafkatest.WaitFor(t, time.Minute, "everything to be committed after the slow job", func() bool { return committed() == others+1 })
	t.Logf("%d other jobs finished while the slow one ran for %v", len(during), time.Since(began).Round(time.Millisecond))
}

// The idle-key cap holds under key churn: live key actors never exceed the
// cap plus the keys that have work, and once the work is done, the cap.
func TestIdleKeyCapHoldsUnderKeyChurn(t *testing.T) {
	t.Parallel()
	const idleCap, buffered, partitions, n = 200, 100, 2, 20_000
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	var runs atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[holdArgs]) error {
		runs.Add(1)
		return nil
	}))
	client := newClient(t, env, topic)
	var params []jobs.EnqueueParams
	for i := range n {
		params = append(params, jobs.EnqueueParams{Args: holdArgs{Key: "churn-" + strconv.Itoa(i), Mode: "ok"}})
	}
	if _, err := client.EnqueueMany(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.MaxIdleKeys = idleCap
	cfg.MaxBuffered = buffered
	s := startJobServer(t, cfg)
	most := 0
	liveKeys := func() int {
		k := 0
		for _, p := range s.Stats() {
			k += p.Keys
		}
		return k
	}
	kafkatest.WaitFor(t, 2*time.Minute, "every job to run", func() bool {
		most = max(most, liveKeys())
		return runs.Load() == n
	})
	if bound := idleCap + buffered*partitions; most > bound {
		t.Errorf("%d live key actors seen; the cap allows %d idle plus %d with work", most, idleCap, buffered*partitions)
	}
	// Once everything is committed, every outcome was counted: no key has
	// work left.
	waitCommittedToEnd(t, env, topic, cfg.Group)
	if k := liveKeys(); k > idleCap {
		t.Errorf("%d key actors alive with no work left; MaxIdleKeys is %d", k, idleCap)
	}
	t.Logf("%d distinct keys: at most %d key actors alive", n, most)
}

// Revoking one partition drains and commits that partition only, while
// another partition of the same runtime keeps running jobs throughout the
// drain: the runtime here is driven directly, over a real consumer group,
// the way the membership code will call it.
func TestRevokingOnePartitionLeavesTheOtherRunning(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 2), env.Group(t)
	keysOf := func(partition int) []string { // keys whose records land on the partition
		var keys []string
		for i := 0; len(keys) < 20; i++ {
			if k := "key-" + strconv.Itoa(i); kafka.Murmur2Partition([]byte(k), 2) == partition {
				keys = append(keys, k)
			}
		}
		return keys
	}
	keys0, keys1 := keysOf(0), keysOf(1)
	produce(t, env, topic, 100, func(i int) string { return keys0[i%20] })

	gate := make(chan struct{})
	var gateOnce sync.Once
	openGate := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(openGate)
	var draining atomic.Bool
	var slowStarted atomic.Bool
	var ranDuringDrain [2]atomic.Int64
	rt, err := actors.NewRuntime(actors.Config{
		Concurrency: 4,
		Logger:      testLogger(t),
		Handler: func(ctx context.Context, r *kafka.Record, _ int) actors.Outcome {
			if r.Partition == 0 && slowStarted.CompareAndSwap(false, true) {
				<-gate // partition 0's first job is in flight when it is revoked
			}
			if r.Partition == 1 {
				time.Sleep(20 * time.Millisecond) // keeps partition 1 busy through the drain
			}
			if draining.Load() {
				ranDuringDrain[r.Partition].Add(1)
			}
			return actors.Done()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	consumer, err := kafka.NewConsumer(consumerConfig(t, env, topic, group))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sessions := make(chan *kafka.Session, 1)
	runDone := make(chan error, 1)
	go func() {
		runDone <- consumer.Run(ctx, func(sess *kafka.Session) {
			for _, c := range sess.Claims() {
				if err := rt.Assign(actors.Assignment{Topic: c.Topic, Partition: c.Partition, Start: c.Start,
					StartMetadata: c.StartMetadata, Source: c, Generation: sess}); err != nil {
					t.Error(err)
				}
			}
			sessions <- sess
			<-sess.Done()
			_ = rt.Shutdown()
		})
	}()
	<-sessions
	kafkatest.WaitFor(t, time.Minute, "partition 0's first job to be in flight", slowStarted.Load)

	draining.Store(true)
	revoked := make(chan error, 1)
	go func() { revoked <- rt.Revoke(actors.TopicPartition{Topic: topic, Partition: 0}) }()
	kafkatest.WaitFor(t, 10*time.Second, "partition 0's revocation to begin", func() bool {
		for _, p := range rt.Stats() {
			if p.Partition == 0 {
				return p.Revoked
			}
		}
		return true
	})
	produce(t, env, topic, 300, func(i int) string { return keys1[i%20] })
	kafkatest.WaitFor(t, time.Minute, "partition 1 to run jobs while partition 0 drains", func() bool {
		return ranDuringDrain[1].Load() >= 50
	})
	select {
	case err := <-revoked:
		t.Fatalf("partition 0's revocation returned (%v) with its job still in flight", err)
	default:
	}
	openGate()
	if err := <-revoked; err != nil {
		t.Fatal(err)
	}
	draining.Store(false)
	offs, err := env.Admin.CommittedOffsets(context.Background(), group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if offs[0] < 1 {
		t.Errorf("partition 0 committed %d after its drain; the job in flight at offset 0 finished", offs[0])
	}
	held := rt.Stats()
	if len(held) != 1 || held[0].Partition != 1 || held[0].Revoked {
		t.Fatalf("after revoking partition 0 the runtime holds %+v; want partition 1, running", held)
	}
	end, err := env.Admin.EndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, time.Minute, "partition 1 to be committed to its end", func() bool {
		offs, err := env.Admin.CommittedOffsets(context.Background(), group, topic)
		return err == nil && offs[1] == end[1]
	})
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("partition 1 ran %d jobs while partition 0 drained", ranDuringDrain[1].Load())
}
