package jobs_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// keyedArgs is a job with a key of its own; orphanArgs is one no worker
// runs, enqueued under the same key.
type keyedArgs struct {
	Key string `msgpack:"key"`
	N   int    `msgpack:"n"`
}

func (keyedArgs) Kind() string                      { return "keyed" }
func (a keyedArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

type orphanArgs struct {
	Key string `msgpack:"key"`
}

func (orphanArgs) Kind() string                      { return "orphan" }
func (a orphanArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// keyedWorkers records the N of every keyed job it runs, in order.
func keyedWorkers(t *testing.T) (*jobs.Workers, func() []int) {
	var mu sync.Mutex
	var ran []int
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(_ context.Context, j *jobs.Job[keyedArgs]) error {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, j.Args.N)
		return nil
	}))
	return ws, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), ran...)
	}
}

// A server started before its topics exist does not sit idle: Start fails
// with an error naming every missing topic, the dead-letter topic included,
// and creates none of them (not even on a broker that creates topics when
// asked for their metadata). Start may be called again once they exist.
func TestStartNamesEveryMissingTopic(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := kafkatest.UniqueName(t, "topic")
	dlq := topic + ".dlq"
	ws, _ := keyedWorkers(t)
	cfg := serverConfig(t, env, topic, ws)
	cfg.CreateTopics = nil
	s, err := jobs.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	err = s.Start(ctx)
	if !errors.Is(err, jobs.ErrTopicsMissing) || !strings.Contains(err.Error(), topic+",") || !strings.Contains(err.Error(), dlq) {
		t.Fatalf("Start with neither topic created returned %v; want ErrTopicsMissing naming %s and %s", err, topic, dlq)
	}
	t.Logf("Start: %v", err)
	have, err := env.Admin.Partitions(ctx, topic, dlq)
	if err != nil {
		t.Fatal(err)
	}
	if len(have) != 0 {
		t.Fatalf("a failed Start left topics behind: %v", have)
	}

	createTopic(ctx, t, env, topic, 1)
	err = s.Start(ctx)
	if !errors.Is(err, jobs.ErrTopicsMissing) || !strings.Contains(err.Error(), dlq) || strings.Contains(err.Error(), topic+",") {
		t.Fatalf("Start with only the dead-letter topic missing returned %v; want ErrTopicsMissing naming %s alone", err, dlq)
	}
	t.Logf("Start: %v", err)

	createTopic(ctx, t, env, dlq, 1)
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start once every topic exists: %v", err)
	}
}

// With Config.CreateTopics, Start creates the missing topics, the
// dead-letter topic included, as asked; a job no worker runs then goes to
// the dead-letter topic and does not hold up the jobs of its key.
func TestCreateTopicsCreatesWhatIsMissing(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := kafkatest.UniqueName(t, "topic")
	dlq := topic + ".dlq"
	ws, ran := keyedWorkers(t)
	cfg := serverConfig(t, env, topic, ws)
	cfg.CreateTopics = &jobs.TopicSpec{Partitions: 3, ReplicationFactor: 1, Configs: map[string]string{"retention.ms": "3600000"}}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), topic, dlq) })
	}
	startJobServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	have, err := env.Admin.Partitions(ctx, topic, dlq)
	if err != nil {
		t.Fatal(err)
	}
	if have[topic] != 3 || have[dlq] != 3 {
		t.Fatalf("after Start the topics have %v partitions; want 3 each", have)
	}

	client := newClient(t, env, topic)
	for i, args := range []jobs.JobArgs{keyedArgs{"k", 1}, orphanArgs{"k"}, keyedArgs{"k", 2}} {
		if _, err := client.Enqueue(ctx, args); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	dead := dlqCollector(t, env, dlq)
	kafkatest.WaitFor(t, time.Minute, "both keyed jobs to run and the orphan to be dead-lettered", func() bool {
		return len(ran()) == 2 && len(dead()) == 1
	})
	if got := ran(); got[0] != 1 || got[1] != 2 {
		t.Errorf("the key's jobs ran as %v, want [1 2]", got)
	}
	if kind, reason := headerOf(dead()[0], jobs.HeaderKind), headerOf(dead()[0], jobs.HeaderError); kind != "orphan" || !strings.Contains(reason, "no worker") {
		t.Errorf("dead letter of kind %q says %q; want the orphan job, for having no worker", kind, reason)
	}
}

// Start's context bounds Start alone; Ready says when the first assignment
// runs; a server starts once; Done and Err tell how it ended.
func TestStartAndStopSemantics(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 2)
	ws, ran := keyedWorkers(t)
	s, err := jobs.NewServer(serverConfig(t, env, topic, ws))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	select {
	case <-s.Ready():
		t.Fatal("Ready is closed before Start")
	default:
	}

	startCtx, cancelStart := context.WithCancel(context.Background())
	if err := s.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
	case <-time.After(time.Minute):
		t.Fatal("Ready was not closed within a minute of Start")
	}
	if n := len(s.Stats()); n != 2 {
		t.Errorf("at Ready the server holds %d partitions, want both", n)
	}
	cancelStart() // bounds Start only: the server runs on
	client := newClient(t, env, topic)
	if _, err := client.Enqueue(context.Background(), keyedArgs{"k", 1}); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, time.Minute, "the job enqueued after Start's context ended to run", func() bool { return len(ran()) == 1 })

	if err := s.Start(context.Background()); !errors.Is(err, jobs.ErrServerStarted) {
		t.Errorf("a second Start returned %v, want ErrServerStarted", err)
	}
	select {
	case <-s.Done():
		t.Fatal("Done is closed while the server runs")
	default:
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done is not closed after Stop returned")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err after Stop is %v, want nil", err)
	}
	err = s.Start(context.Background())
	if !errors.Is(err, jobs.ErrServerStopped) || strings.Contains(err.Error(), "RecordServer") {
		t.Errorf("Start after Stop returned %v; want ErrServerStopped, in terms of the Server", err)
	}

	// Stopped before it started, a server never starts.
	never, err := jobs.NewServer(serverConfig(t, env, topic, ws))
	if err != nil {
		t.Fatal(err)
	}
	if err := never.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := never.Start(context.Background()); !errors.Is(err, jobs.ErrServerStopped) {
		t.Errorf("Start after a Stop before any Start returned %v, want ErrServerStopped", err)
	}
	select {
	case <-never.Done():
	default:
		t.Error("Done is not closed for a server stopped before it started")
	}
}

// A server the group refuses for good (here: another member holds the group
// with a partition assignor ordo does not speak) stops by itself, and says
// so through Done and Err rather than retrying in silence.
func TestServerRefusedByItsGroupReportsDoneAndErr(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	ws, _ := keyedWorkers(t)
	cfg := serverConfig(t, env, topic, ws)
	other, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: cfg.Group, Brokers: env.Brokers, Topics: []string{topic},
		GroupBalancers:    []kafkago.GroupBalancer{kafkago.RackAffinityGroupBalancer{Rack: "r1"}},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := other.Next(ctx); err != nil {
		t.Fatalf("the other member did not join: %v", err)
	}

	s := startJobServer(t, cfg)
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("a server refused by its group did not stop within a minute")
	}
	err = s.Err()
	if !errors.Is(err, kafka.ErrMembershipFailed) || !errors.Is(err, kafkago.InconsistentGroupProtocol) {
		t.Fatalf("Err is %v; want kafka.ErrMembershipFailed caused by the inconsistent group protocol", err)
	}
	t.Logf("Err: %v", err)
}

func createTopic(ctx context.Context, t *testing.T, env *kafkatest.Env, name string, partitions int) {
	t.Helper()
	if err := env.Admin.CreateTopics(ctx, kafka.Topic{Name: name, Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), name) })
	}
}

// Partitions added to a running server's topic are picked up by its
// partition watch, and the jobs written to them run.
func TestServerRunsJobsOnPartitionsAddedToItsTopic(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	ws, ran := keyedWorkers(t)
	cfg := serverConfig(t, env, topic, ws)
	cfg.PartitionWatchInterval = 300 * time.Millisecond
	s := startJobServer(t, cfg)
	<-s.Ready()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	if err := env.Admin.AddPartitions(ctx, topic, 3); err != nil {
		t.Fatal(err)
	}
	// A client of its own: another would still have one partition cached.
	client := newClient(t, env, topic)
	key := ""
	for i := 0; key == ""; i++ {
		if k := "k" + string(rune('a'+i%26)) + strings.Repeat("x", i/26); kafka.Murmur2Partition([]byte(k), 3) == 2 {
			key = k
		}
	}
	info, err := client.Enqueue(ctx, keyedArgs{key, 1})
	if err != nil {
		t.Fatal(err)
	}
	if info.Partition != 2 {
		t.Fatalf("the job went to partition %d, want the added partition 2", info.Partition)
	}
	kafkatest.WaitFor(t, 30*time.Second, "the job on the added partition to run", func() bool { return len(ran()) == 1 })
	t.Logf("the job on an added partition ran %v after the partitions were asked for (watch interval 300ms)", time.Since(began).Round(time.Millisecond))
}

// A server configured as the quickstart is (CreateTopics set, Schedules
// left at its default) creates its topic's schedules topic too, compacted,
// so a job enqueued WithDelay is accepted and runs, no earlier than due.
func TestCreateTopicsCreatesTheSchedulesTopicUnderSchedulesAuto(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := kafkatest.UniqueName(t, "topic")
	schedules := topic + jobs.DefaultScheduleSuffix
	ws, ran := keyedWorkers(t)
	cfg := serverConfig(t, env, topic, ws)
	cfg.Schedules = jobs.SchedulesAuto
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), topic, topic+".dlq", schedules) })
	}
	s := startJobServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitForSignal(t, s.Ready(), "the server to be ready")

	client := newClient(t, env, topic)
	enqueued := time.Now()
	info, err := client.Enqueue(ctx, keyedArgs{"k", 1}, jobs.WithDelay(time.Second))
	if err != nil {
		t.Fatalf("Enqueue WithDelay(1s) on a server that creates its topics: %v", err)
	}
	kafkatest.WaitFor(t, 30*time.Second, "the delayed job to run", func() bool { return len(ran()) == 1 })
	if took := time.Since(enqueued); took < time.Second {
		t.Errorf("the job due in 1s ran after %v", took)
	}
	if outcome, err := client.Cancel(ctx, info.ID); err != nil || outcome != jobs.CancelTooLate {
		t.Errorf("Cancel of the job that ran returned %v, %v; want CancelTooLate", outcome, err)
	}
}
