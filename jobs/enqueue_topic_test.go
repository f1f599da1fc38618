package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// TestEnqueueToATopicCreatedAMomentAgoSucceeds: a client that has already
// enqueued (and so holds the cluster's metadata) enqueues to a topic created
// a moment ago, and the job is written rather than refused with Unknown
// Topic Or Partition from metadata read before the topic existed.
func TestEnqueueToATopicCreatedAMomentAgoSucceeds(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	client := enqueueClient(t, env, env.Topic(t, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := client.Enqueue(ctx, plainArgs{N: 0}); err != nil {
		t.Fatal(err)
	}
	for _, call := range []string{"Enqueue", "EnqueueMany", "EnqueueAsync"} {
		topic := env.Topic(t, 2)
		start := time.Now()
		var err error
		switch call {
		case "Enqueue":
			_, err = client.Enqueue(ctx, plainArgs{N: 1}, jobs.WithTopic(topic))
		case "EnqueueMany":
			_, err = client.EnqueueMany(ctx, []jobs.EnqueueParams{
				{Args: plainArgs{N: 1}, Opts: []jobs.EnqueueOption{jobs.WithTopic(topic)}},
				{Args: plainArgs{N: 2}, Opts: []jobs.EnqueueOption{jobs.WithTopic(topic)}}})
		case "EnqueueAsync":
			done := make(chan error, 1)
			client.EnqueueAsync(ctx, plainArgs{N: 1}, func(_ jobs.JobInfo, err error) { done <- err }, jobs.WithTopic(topic))
			err = <-done
		}
		if err != nil {
			t.Fatalf("%s to %s, created a moment ago, failed after %v: %v", call, topic, time.Since(start), err)
		}
		t.Logf("%s to a topic created a moment ago: written after %v", call, time.Since(start))
	}
}

// TestEnqueueToAMissingTopicWaitsThenNamesIt: an enqueue to a topic that
// never appears keeps trying until its ctx's deadline, or
// ClientConfig.UnknownTopicWait when that comes first, and then fails with
// an error that names the topic and matches jobs.ErrUnknownTopic.
func TestEnqueueToAMissingTopicWaitsThenNamesIt(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	existing := env.Topic(t, 1)
	missing := kafkatest.UniqueName(t, "missing")
	const wait = 700 * time.Millisecond
	bounded, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: existing, Logger: testLogger(t), UnknownTopicWait: wait})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bounded.Close() })
	plain := enqueueClient(t, env, existing)

	cases := []struct {
		name     string
		client   *jobs.Client
		deadline time.Duration // 0: none
		call     func(ctx context.Context, c *jobs.Client) error
		says     string
	}{
		{"Enqueue until the deadline", plain, wait, func(ctx context.Context, c *jobs.Client) error {
			_, err := c.Enqueue(ctx, plainArgs{}, jobs.WithTopic(missing))
			return err
		}, "context deadline"},
		{"Enqueue until UnknownTopicWait", bounded, 0, func(ctx context.Context, c *jobs.Client) error {
			_, err := c.Enqueue(ctx, plainArgs{}, jobs.WithTopic(missing))
			return err
		}, "UnknownTopicWait"},
		{"EnqueueMany", plain, wait, func(ctx context.Context, c *jobs.Client) error {
			_, err := c.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: plainArgs{}, Opts: []jobs.EnqueueOption{jobs.WithTopic(missing)}}})
			return err
		}, "context deadline"},
		{"EnqueueAsync", plain, wait, func(ctx context.Context, c *jobs.Client) error {
			done := make(chan error, 1)
			c.EnqueueAsync(ctx, plainArgs{}, func(_ jobs.JobInfo, err error) { done <- err }, jobs.WithTopic(missing))
			return <-done
		}, "context deadline"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.deadline)
				defer cancel()
			}
			start := time.Now()
			err := c.call(ctx, c.client)
			took := time.Since(start)
			if !errors.Is(err, jobs.ErrUnknownTopic) || !strings.Contains(err.Error(), fmt.Sprintf("%q", missing)) ||
				!strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v; want jobs.ErrUnknownTopic naming %q and saying %q", err, missing, c.says)
			}
			if took < wait-50*time.Millisecond || took > wait+5*time.Second {
				t.Errorf("failed after %v; want it to keep trying for about %v", took, wait)
			}
			t.Logf("after %v: %v", took, err)
		})
	}
}

// TestWithDelayAndCancelNameAMissingSchedulesTopic: with no schedules topic
// (the job topic was created without one), a scheduled enqueue and a Cancel
// fail naming "<topic>.schedule", matchable with jobs.ErrUnknownTopic.
func TestWithDelayAndCancelNameAMissingSchedulesTopic(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	client := enqueueClient(t, env, topic)
	schedules := fmt.Sprintf("%q", topic+jobs.DefaultScheduleSuffix)
	for _, c := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"WithDelay", func(ctx context.Context) error {
			_, err := client.Enqueue(ctx, plainArgs{}, jobs.WithDelay(time.Second))
			return err
		}},
		{"WithDelay and a key", func(ctx context.Context) error {
			_, err := client.Enqueue(ctx, plainArgs{}, jobs.WithDelay(time.Second), jobs.WithKey("k"))
			return err
		}},
		{"EnqueueMany WithDelay", func(ctx context.Context) error {
			_, err := client.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: plainArgs{}, Opts: []jobs.EnqueueOption{jobs.WithDelay(time.Second)}}})
			return err
		}},
		{"Cancel", func(ctx context.Context) error {
			outcome, err := client.Cancel(ctx, "01JOBID")
			if outcome != jobs.CancelUnconfirmed {
				t.Errorf("Cancel's outcome is %v, want unconfirmed", outcome)
			}
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := c.call(ctx)
			if !errors.Is(err, jobs.ErrUnknownTopic) || !strings.Contains(err.Error(), schedules) {
				t.Fatalf("got %v; want jobs.ErrUnknownTopic naming %s", err, schedules)
			}
			t.Logf("%v", err)
		})
	}
}

// oversized is how the error of job 2, of 2 MB and kind order_update, reads.
var oversized = regexp.MustCompile(`job 2 \(kind "order_update"\): 20\d{5} bytes, over the limit of 1048576`)

// TestEnqueueManyFailsOnlyTheOversizedJob: one job above the size limit
// among small ones fails alone, with an *EnqueueManyError whose entry for it
// names its index, size and the limit; the small jobs are written.
func TestEnqueueManyFailsOnlyTheOversizedJob(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	client := enqueueClient(t, env, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := orderUpdateArgs{UserID: "u", Seq: 2, Note: strings.Repeat("x", 2<<20)}
	params := []jobs.EnqueueParams{
		{Args: orderUpdateArgs{UserID: "u", Seq: 0}},
		{Args: orderUpdateArgs{UserID: "u", Seq: 1}},
		{Args: big},
		{Args: orderUpdateArgs{UserID: "u", Seq: 3}},
	}
	infos, err := client.EnqueueMany(ctx, params)
	var partial *jobs.EnqueueManyError
	if !errors.As(err, &partial) {
		t.Fatalf("EnqueueMany returned %v, want an *EnqueueManyError", err)
	}
	t.Logf("%v; job 2: %v", err, partial.Errs[2])
	for i, e := range partial.Errs {
		if (e != nil) != (i == 2) {
			t.Errorf("job %d: error %v; want only job 2 (the oversized one) to fail", i, e)
		}
	}
	if e := partial.Errs[2]; e == nil || !oversized.MatchString(e.Error()) || !errors.Is(e, jobs.ErrMessageTooLarge) {
		t.Errorf("job 2's error is %v; want it to name the job, its size and the limit of 1048576, and match jobs.ErrMessageTooLarge", e)
	}
	if infos[2].Partition != -1 {
		t.Errorf("the oversized job's info %+v; want Partition -1", infos[2])
	}
	var seqs []int
	for _, r := range env.ReadAll(t, topic) {
		_, args := decodeJob[orderUpdateArgs](t, r)
		seqs = append(seqs, args.Seq)
	}
	if fmt.Sprint(seqs) != "[0 1 3]" {
		t.Errorf("the topic holds jobs %v, want [0 1 3]", seqs)
	}
}

// TestWithDelayToASchedulesTopicCreatedAMomentAgoSucceeds: a scheduled job
// with a key draws its id against the schedules topic's partitions; a client
// that looked the topic up before it existed finds it once it is created,
// rather than refusing the job from what it read before.
func TestWithDelayToASchedulesTopicCreatedAMomentAgoSucceeds(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	client := enqueueClient(t, env, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	before, cancelBefore := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelBefore()
	if _, err := client.Enqueue(before, plainArgs{}, jobs.WithDelay(time.Hour), jobs.WithKey("k")); !errors.Is(err, jobs.ErrTopicsMissing) {
		t.Fatalf("a scheduled enqueue before the schedules topic exists returned %v, want ErrTopicsMissing", err)
	}
	// Created through connections of their own, as another process would.
	admin := kafka.NewSecureAdmin(env.Brokers, &kafka.Security{})
	schedules := topic + jobs.DefaultScheduleSuffix
	if err := admin.CreateTopics(ctx, kafka.Topic{Name: schedules, Partitions: 3, Configs: map[string]string{"cleanup.policy": "compact"}}); err != nil {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), schedules) })
	}
	start := time.Now()
	info, err := client.Enqueue(ctx, plainArgs{}, jobs.WithDelay(time.Hour), jobs.WithKey("k"))
	if err != nil {
		t.Fatalf("a scheduled enqueue right after the schedules topic was created failed after %v: %v", time.Since(start), err)
	}
	if want := kafka.Murmur2Partition([]byte("k"), 3); info.Partition != want {
		t.Errorf("the schedule record went to partition %d, want %d (the key's)", info.Partition, want)
	}
	t.Logf("written after %v to %s/%d", time.Since(start), schedules, info.Partition)
}
