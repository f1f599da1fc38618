package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/jobs"
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
		{"no brokers", func(c *jobs.Config) { c.Brokers = nil }, "Config.Brokers"},
		{"no group", func(c *jobs.Config) { c.Group = "" }, "Config.Group"},
		{"no topics", func(c *jobs.Config) { c.Topics = nil }, "Config.Topics"},
		{"no workers", func(c *jobs.Config) { c.Workers = jobs.NewWorkers() }, "Config.Workers"},
		{"negative attempts", func(c *jobs.Config) { c.MaxAttempts = -1 }, "Config.MaxAttempts"},
		{"backoff cap below start", func(c *jobs.Config) {
			c.Backoff = supervision.Backoff{Initial: time.Second, Max: time.Millisecond}
		}, "Config.Backoff"},
		{"dead letters into a consumed topic", func(c *jobs.Config) { c.DeadLetterTopic = "t" }, "Config.DeadLetterTopic"},
		{"long-running topic not consumed", func(c *jobs.Config) { c.LongRunningTopics = []string{"x"} }, "Config.LongRunningTopics"},
		{"negative concurrency", func(c *jobs.Config) { c.Concurrency = -1 }, "Concurrency"},
		{"heartbeat not below session timeout", func(c *jobs.Config) {
			c.HeartbeatInterval, c.SessionTimeout = 10*time.Second, 5*time.Second
		}, "HeartbeatInterval"},
	}
	for _, c := range cases {
		cfg := good
		c.mutate(&cfg)
		_, err := jobs.NewServer(cfg)
		if err == nil || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: NewServer error %v, want one naming %s", c.name, err, c.mention)
		}
	}
	if _, err := jobs.NewServer(good); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}
