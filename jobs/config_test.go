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
		{"an empty topic name", func(c *jobs.Config) { c.Topics = []string{""} }, "Config.Topics[0]"},
		{"an empty topic among good ones", func(c *jobs.Config) { c.Topics = []string{"t", ""} }, "Config.Topics[1]"},
		{"a topic name with a space", func(c *jobs.Config) { c.Topics = []string{"my jobs"} }, "Config.Topics[0]"},
		{"a topic named ..", func(c *jobs.Config) { c.Topics = []string{".."} }, "Config.Topics[0]"},
		{"a topic name of 250 characters", func(c *jobs.Config) { c.Topics = []string{strings.Repeat("t", 250)} }, "Config.Topics[0]"},
		{"an invalid dead-letter topic", func(c *jobs.Config) { c.DeadLetterTopic = "dead/letters" }, "Config.DeadLetterTopic"},
		{"topics created with no partitions", func(c *jobs.Config) {
			c.CreateTopics = &jobs.TopicSpec{ReplicationFactor: 1}
		}, "Config.CreateTopics"},
		{"topics created with no replicas", func(c *jobs.Config) {
			c.CreateTopics = &jobs.TopicSpec{Partitions: 3}
		}, "Config.CreateTopics"},
		{"a negative partition watch interval", func(c *jobs.Config) { c.PartitionWatchInterval = -time.Second }, "PartitionWatchInterval"},
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
