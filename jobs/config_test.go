package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

func TestNewServerNamesTheBadSetting(t *testing.T) {
	workers := jobs.NewWorkers()
	if err := jobs.AddWorker(workers, jobs.WorkFunc(func(context.Context, *jobs.Job[GreetArgs]) error { return nil })); err != nil {
		t.Fatal(err)
	}
	good := jobs.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", Topics: []string{"t"}, Workers: workers}
	cases := []struct {
		name    string
		mutate  func(*jobs.Config)
		mention string
	}{
		{"no brokers", func(c *jobs.Config) { c.Brokers = nil }, "jobs.Config.Brokers"},
		{"no group", func(c *jobs.Config) { c.Group = "" }, "jobs.Config.Group"},
		{"no topics", func(c *jobs.Config) { c.Topics = nil }, "jobs.Config.Topics"},
		{"no workers", func(c *jobs.Config) { c.Workers = jobs.NewWorkers() }, "jobs.Config.Workers"},
		{"a nil middleware", func(c *jobs.Config) {
			c.Middleware = []jobs.Middleware{jobs.MiddlewareDefaults{}, nil}
		}, "jobs.Config.Middleware[1]"},
		{"negative attempts", func(c *jobs.Config) { c.MaxAttempts = -1 }, "jobs.Config.MaxAttempts"},
		{"backoff cap below start", func(c *jobs.Config) {
			c.Backoff = jobs.Backoff{Initial: time.Second, Max: time.Millisecond}
		}, "jobs.Config.Backoff"},
		{"dead letters into a consumed topic", func(c *jobs.Config) { c.DeadLetterTopic = "t" }, "jobs.Config.DeadLetterTopic"},
		{"long-running topic not consumed", func(c *jobs.Config) { c.LongRunningTopics = []string{"x"} }, "jobs.Config.LongRunningTopics"},
		{"negative concurrency", func(c *jobs.Config) { c.Concurrency = -1 }, "jobs.Config.Concurrency"},
		{"heartbeat not below session timeout", func(c *jobs.Config) {
			c.HeartbeatInterval, c.SessionTimeout = 10*time.Second, 5*time.Second
		}, "jobs.Config.HeartbeatInterval"},
		{"an empty topic name", func(c *jobs.Config) { c.Topics = []string{""} }, "jobs.Config.Topics[0]"},
		{"an empty topic among good ones", func(c *jobs.Config) { c.Topics = []string{"t", ""} }, "jobs.Config.Topics[1]"},
		{"a topic name with a space", func(c *jobs.Config) { c.Topics = []string{"my jobs"} }, "jobs.Config.Topics[0]"},
		{"a topic named ..", func(c *jobs.Config) { c.Topics = []string{".."} }, "jobs.Config.Topics[0]"},
		{"a topic name of 250 characters", func(c *jobs.Config) { c.Topics = []string{strings.Repeat("t", 250)} }, "jobs.Config.Topics[0]"},
		{"an invalid dead-letter topic", func(c *jobs.Config) { c.DeadLetterTopic = "dead/letters" }, "jobs.Config.DeadLetterTopic"},
		{"topics created with no partitions", func(c *jobs.Config) {
			c.CreateTopics = &jobs.TopicSpec{ReplicationFactor: 1}
		}, "jobs.Config.CreateTopics"},
		{"topics created with no replicas", func(c *jobs.Config) {
			c.CreateTopics = &jobs.TopicSpec{Partitions: 3}
		}, "jobs.Config.CreateTopics"},
		{"an invalid status topic", func(c *jobs.Config) { c.StatusTopic = "status topic" }, "jobs.Config.StatusTopic"},
		{"status reports into a consumed topic", func(c *jobs.Config) { c.StatusTopic = "t" }, "jobs.Config.StatusTopic"},
		{"a status interval below 100ms", func(c *jobs.Config) { c.StatusInterval = time.Millisecond }, "jobs.Config.StatusInterval"},
		{"a negative status interval", func(c *jobs.Config) { c.StatusInterval = -time.Second }, "jobs.Config.StatusInterval"},
		{"a periodic job with a bad cron spec", func(c *jobs.Config) {
			c.Periodic = []jobs.PeriodicJob{jobs.Periodic("61 * * * *", GreetArgs{User: "n"})}
		}, "jobs.Config.Periodic[0]"},
		{"a periodic interval under a second", func(c *jobs.Config) {
			c.Periodic = []jobs.PeriodicJob{jobs.Periodic("@every 1s", GreetArgs{User: "n"}), jobs.Periodic("@every 10ms", GreetArgs{User: "n"}, jobs.PeriodicName("b"))}
		}, "jobs.Config.Periodic[1]"},
		{"two periodic jobs of one name", func(c *jobs.Config) {
			c.Periodic = []jobs.PeriodicJob{jobs.Periodic("@hourly", GreetArgs{User: "n"}), jobs.Periodic("@daily", GreetArgs{User: "n"})}
		}, "jobs.Config.Periodic[1]"},
		{"a periodic job with a delay", func(c *jobs.Config) {
			c.Periodic = []jobs.PeriodicJob{jobs.Periodic("@hourly", GreetArgs{User: "n"}, jobs.WithDelay(time.Minute))}
		}, "jobs.Config.Periodic[0]"},
		{"a periodic job with nil args", func(c *jobs.Config) {
			c.Periodic = []jobs.PeriodicJob{jobs.Periodic("@hourly", nil)}
		}, "jobs.Config.Periodic[0]"},
		{"periodic jobs with schedules off", func(c *jobs.Config) {
			c.Periodic, c.Schedules = []jobs.PeriodicJob{jobs.Periodic("@hourly", GreetArgs{User: "n"})}, jobs.SchedulesOff
		}, "jobs.Config.Periodic"},
		{"a negative partition watch interval", func(c *jobs.Config) { c.PartitionWatchInterval = -time.Second }, "jobs.Config.PartitionWatchInterval"},
		// Every setting the layers below also check is checked here first,
		// so the error names the field the user wrote.
		{"negative idle timeout", func(c *jobs.Config) { c.IdleTimeout = -time.Second }, "jobs.Config.IdleTimeout"},
		{"negative max buffered", func(c *jobs.Config) { c.MaxBuffered = -1 }, "jobs.Config.MaxBuffered"},
		{"negative max span", func(c *jobs.Config) { c.MaxSpan = -1 }, "jobs.Config.MaxSpan"},
		{"max span below max buffered", func(c *jobs.Config) { c.MaxBuffered, c.MaxSpan = 100, 10 }, "jobs.Config.MaxSpan"},
		{"negative virtual partitions", func(c *jobs.Config) { c.MaxVirtualPartitions = -1 }, "jobs.Config.MaxVirtualPartitions"},
		{"negative idle keys", func(c *jobs.Config) { c.MaxIdleKeys = -1 }, "jobs.Config.MaxIdleKeys"},
		{"negative commit interval", func(c *jobs.Config) { c.CommitInterval = -time.Second }, "jobs.Config.CommitInterval"},
		{"negative shutdown timeout", func(c *jobs.Config) { c.ShutdownTimeout = -time.Second }, "jobs.Config.ShutdownTimeout"},
		{"negative start timeout", func(c *jobs.Config) { c.StartTimeout = -time.Second }, "jobs.Config.StartTimeout"},
		{"negative grace", func(c *jobs.Config) { c.LongRunningGrace = -time.Second }, "jobs.Config.LongRunningGrace"},
		{"negative rebalance timeout", func(c *jobs.Config) { c.RebalanceTimeout = -time.Second }, "jobs.Config.RebalanceTimeout"},
		{"session timeout beyond Kafka's cap", func(c *jobs.Config) { c.SessionTimeout = time.Hour }, "jobs.Config.SessionTimeout"},
		{"concurrency beyond its cap", func(c *jobs.Config) { c.Concurrency = 1 << 30 }, "jobs.Config.Concurrency"},
		{"a topic named twice", func(c *jobs.Config) { c.Topics = []string{"t", "u", "t"} }, "jobs.Config.Topics[2]"},
		{"an empty broker", func(c *jobs.Config) { c.Brokers = []string{"127.0.0.1:9092", ""} }, "jobs.Config.Brokers[1]"},
		{"a broker without a port", func(c *jobs.Config) { c.Brokers = []string{"localhost"} }, "jobs.Config.Brokers[0]"},
		{"an IPv6 broker without a port", func(c *jobs.Config) { c.Brokers = []string{"127.0.0.1:9092", "[::1]"} }, "jobs.Config.Brokers[1]"},
		{"a broker with an empty port", func(c *jobs.Config) { c.Brokers = []string{"kafka-1:"} }, "jobs.Config.Brokers[0]"},
		{"a periodic job whose kind has no worker", func(c *jobs.Config) {
			c.Periodic = []jobs.PeriodicJob{jobs.Periodic("@hourly", GreetArgs{User: "n"}), jobs.Periodic("@hourly", unworkedArgs{})}
		}, "jobs.Config.Periodic[1]"},
		{"an instance id Kafka refuses", func(c *jobs.Config) { c.InstanceID = "pod 0" }, "jobs.Config.InstanceID"},
		{"an unknown SASL mechanism", func(c *jobs.Config) {
			c.Security = &jobs.Security{SASL: &jobs.SASL{Mechanism: "GSSAPI", Username: "u"}}
		}, "jobs.Config.Security"},
	}
	for _, c := range cases {
		cfg := good
		c.mutate(&cfg)
		_, err := jobs.NewServer(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), "invalid configuration: "+c.mention+":") {
			t.Errorf("%s: NewServer error %v, want one naming %s", c.name, err, c.mention)
			continue
		}
		if !errors.Is(err, jobs.ErrInvalidConfig) {
			t.Errorf("%s: %v does not wrap jobs.ErrInvalidConfig", c.name, err)
		}
		if strings.Contains(err.Error(), "actors") || strings.Contains(err.Error(), "kafka.") {
			t.Errorf("%s: %v names an inner package's setting", c.name, err)
		}
	}
	if _, err := jobs.NewServer(good); err != nil {
		t.Errorf("good config refused: %v", err)
	}
	for _, brokers := range [][]string{{"kafka-1.internal:9092"}, {"[::1]:9092"}, {"[fe80::1%eth0]:9093", "10.0.0.1:9094"}} {
		cfg := good
		cfg.Brokers = brokers
		if _, err := jobs.NewServer(cfg); err != nil {
			t.Errorf("brokers %q refused: %v", brokers, err)
		}
	}
	// A periodic job sent to a topic this server does not consume is
	// worked elsewhere: it needs no worker here.
	cfg := good
	cfg.Periodic = []jobs.PeriodicJob{jobs.Periodic("@hourly", unworkedArgs{}, jobs.WithTopic("reports"))}
	if _, err := jobs.NewServer(cfg); err != nil {
		t.Errorf("a periodic job for another topic refused: %v", err)
	}
}

// unworkedArgs is a kind no test registers a worker for.
type unworkedArgs struct{}

func (unworkedArgs) Kind() string { return "unworked" }

func TestANilWorkFuncIsRefusedWhenAdded(t *testing.T) {
	ws := jobs.NewWorkers()
	err := jobs.AddWorker(ws, jobs.WorkFunc[GreetArgs](nil))
	if err == nil || !strings.Contains(err.Error(), "WorkFunc") || !strings.Contains(err.Error(), "nil") {
		t.Errorf("AddWorker(WorkFunc(nil)) returned %v, want an error saying the WorkFunc is nil", err)
	}
	err = jobs.AddBatchWorker(ws, jobs.WorkBatchFunc[GreetArgs](nil))
	if err == nil || !strings.Contains(err.Error(), "WorkBatchFunc") || !strings.Contains(err.Error(), "nil") {
		t.Errorf("AddBatchWorker(WorkBatchFunc(nil)) returned %v, want an error saying the WorkBatchFunc is nil", err)
	}
	// Neither took the kind: a real worker can still be added.
	if err := jobs.AddWorker(ws, jobs.WorkFunc(func(context.Context, *jobs.Job[GreetArgs]) error { return nil })); err != nil {
		t.Errorf("a worker after the refused nil one: %v", err)
	}
}

// A config with several mistakes names the same one every time: the checks
// run in the order Config declares its fields, never in map order.
func TestNewServerNamesTheFirstMistakeEveryTime(t *testing.T) {
	workers := jobs.NewWorkers()
	if err := jobs.AddWorker(workers, jobs.WorkFunc(func(context.Context, *jobs.Job[GreetArgs]) error { return nil })); err != nil {
		t.Fatal(err)
	}
	bad := jobs.Config{Brokers: []string{"127.0.0.1:9092"}, Group: "g", Topics: []string{"t"}, Workers: workers,
		IdleTimeout: -1, SessionTimeout: -1, RebalanceTimeout: -1, HeartbeatInterval: -1, PartitionWatchInterval: -1,
		CommitInterval: -1, MaxBuffered: -1}
	_, first := jobs.NewServer(bad)
	if first == nil || !strings.Contains(first.Error(), "jobs.Config.MaxBuffered:") {
		t.Fatalf("NewServer error %v, want the first mistake in field order, MaxBuffered", first)
	}
	for range 50 {
		if _, err := jobs.NewServer(bad); err == nil || err.Error() != first.Error() {
			t.Fatalf("NewServer error %v, then %v", first, err)
		}
	}
}

// jobs spells its defaults out so that go doc shows them; the layers that
// apply a zero setting have their own. They must agree, or the documented
// default would not be the one a zero value gets.
func TestDefaultsAreTheLayersDefaults(t *testing.T) {
	cases := []struct {
		name      string
		jobs, got any
	}{
		{"DefaultConcurrency", jobs.DefaultConcurrency, actors.DefaultConcurrency},
		{"DefaultMaxBuffered", jobs.DefaultMaxBuffered, actors.DefaultMaxBuffered},
		{"DefaultMaxSpanFactor", jobs.DefaultMaxSpanFactor, actors.DefaultMaxSpanFactor},
		{"DefaultIdleTimeout", jobs.DefaultIdleTimeout, actors.DefaultIdleTimeout},
		{"DefaultMaxIdleKeys", jobs.DefaultMaxIdleKeys, actors.DefaultMaxIdleKeys},
		{"DefaultMaxAttempts", jobs.DefaultMaxAttempts, supervision.DefaultMaxAttempts},
		{"DefaultBackoffInitial", jobs.DefaultBackoffInitial, supervision.DefaultBackoffInitial},
		{"DefaultBackoffMax", jobs.DefaultBackoffMax, supervision.DefaultBackoffMax},
		{"DefaultLongRunningGrace", jobs.DefaultLongRunningGrace, actors.DefaultLongRunningGrace},
		{"DefaultCommitInterval", jobs.DefaultCommitInterval, actors.DefaultCommitInterval},
		{"DefaultShutdownTimeout", jobs.DefaultShutdownTimeout, actors.DefaultShutdownTimeout},
		{"DefaultSessionTimeout", jobs.DefaultSessionTimeout, kafka.DefaultSessionTimeout},
		{"DefaultRebalanceTimeout", jobs.DefaultRebalanceTimeout, kafka.DefaultRebalanceTimeout},
		{"DefaultHeartbeatInterval", jobs.DefaultHeartbeatInterval, kafka.DefaultHeartbeatInterval},
		{"DefaultPartitionWatchInterval", jobs.DefaultPartitionWatchInterval, kafka.DefaultPartitionWatchInterval},
		{"DefaultStatusTopic", jobs.DefaultStatusTopic, status.DefaultTopic},
		{"DefaultStatusInterval", jobs.DefaultStatusInterval, status.DefaultInterval},
	}
	for _, c := range cases {
		// Untyped constants: compare as the layer's type would hold them.
		if fmt.Sprint(c.jobs) != fmt.Sprint(c.got) {
			t.Errorf("jobs.%s = %v, but the layer applies %v", c.name, c.jobs, c.got)
		}
	}
}
