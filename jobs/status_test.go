package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/internal/ops"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/jobs"
)

type statusOKArgs struct {
	Secret string `msgpack:"secret"`
}

func (statusOKArgs) Kind() string { return "status_ok" }

type statusFailArgs struct {
	Secret string `msgpack:"secret"`
}

func (statusFailArgs) Kind() string { return "status_fail" }

// The status report tells an operator what each server holds and did, and
// never what a job carried.
func TestStatusReportShowsPartitionsCountsAndErrorsButNoArgs(t *testing.T) {
	t.Parallel()
	const partitions, ok, failing = 3, 30, 4
	const secret = "card-4111-1111"
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	statusTopic := kafkatest.UniqueName(t, "status")

	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(context.Context, *jobs.Job[statusOKArgs]) error { return nil }))
	mustAdd(t, ws, jobs.WorkFunc(func(context.Context, *jobs.Job[statusFailArgs]) error {
		return jobs.Permanent(errors.New("card declined"))
	}))
	cfg := serverConfig(t, env, topic, ws)
	cfg.StatusTopic, cfg.StatusInterval = statusTopic, 200*time.Millisecond
	server := startJobServer(t, cfg)

	client := newClient(t, env, topic)
	ctx := context.Background()
	for i := range ok + failing {
		var args jobs.JobArgs = statusOKArgs{Secret: secret}
		if i < failing {
			args = statusFailArgs{Secret: secret}
		}
		if _, err := client.Enqueue(ctx, args, jobs.WithKey("acct-"+string(rune('a'+i%5)))); err != nil {
			t.Fatal(err)
		}
	}

	reader := ops.NewStatusReader(env.Admin, statusTopic)
	var m ops.Member
	kafkatest.WaitFor(t, 30*time.Second, "a report with every job counted", func() bool {
		if err := reader.Refresh(ctx); err != nil {
			return false
		}
		members := reader.Members(time.Now())
		if len(members) != 1 {
			return false
		}
		m = members[0]
		counts := map[string]status.KindCounts{}
		for _, k := range m.Kinds {
			counts[k.Kind] = k
		}
		return counts["status_ok"].Processed == ok && counts["status_fail"].DeadLettered == failing &&
			len(m.Partitions) == partitions
	})
	if m.Group != cfg.Group || m.Member == "" || m.Host == "" || m.Gone || m.DeadLetterTopic != cfg.DeadLetterTopic {
		t.Errorf("member: group %q member %q host %q gone %v dlq %q", m.Group, m.Member, m.Host, m.Gone, m.DeadLetterTopic)
	}
	for _, p := range m.Partitions {
		if p.Topic != topic || p.Generation < 1 {
			t.Errorf("partition %+v", p)
		}
	}
	if len(m.Errors) != failing {
		t.Fatalf("%d errors in the report, want %d: %+v", len(m.Errors), failing, m.Errors)
	}
	for _, e := range m.Errors {
		if e.Kind != "status_fail" || e.JobID == "" || !strings.HasPrefix(e.Key, "acct-") || e.Attempt != 1 ||
			!strings.Contains(e.Message, "card declined") || !e.DeadLettered {
			t.Errorf("error %+v", e)
		}
	}
	raw, _ := json.Marshal(m.Report)
	if strings.Contains(string(raw), secret) {
		t.Errorf("the report carries a job's args: %s", raw)
	}

	// A server that stops takes its report with it.
	if err := server.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reader.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if members := reader.Members(time.Now()); len(members) != 0 {
		t.Errorf("after Stop the status topic still shows %d members", len(members))
	}
}

// A server with the reports off writes nothing to the status topic.
func TestDisableStatusPublishesNothing(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	statusTopic := env.Topic(t, 1)
	ran := make(chan struct{}, 1)
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(context.Context, *jobs.Job[statusOKArgs]) error {
		ran <- struct{}{}
		return nil
	}))
	cfg := serverConfig(t, env, topic, ws)
	cfg.StatusTopic, cfg.StatusInterval, cfg.DisableStatus = statusTopic, 100*time.Millisecond, true
	server := startJobServer(t, cfg)
	if _, err := newClient(t, env, topic).Enqueue(context.Background(), statusOKArgs{}); err != nil {
		t.Fatal(err)
	}
	waitForSignal(t, ran, "the job to run")
	waitForSignal(t, server.Ready(), "the server to be ready")
	if err := server.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	end, err := env.Admin.EndOffsets(context.Background(), statusTopic)
	if err != nil {
		t.Fatal(err)
	}
	if end[0] != 0 {
		t.Errorf("the status topic holds %d records; want none", end[0])
	}
}

// Without Config.CreateTopics ordo creates no topic, the status topic
// included: the reports wait for it, the log says what to do once, and jobs
// run as ever.
func TestStatusTopicIsNotCreatedWithoutCreateTopics(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, dlq := env.Topic(t, 1), env.Topic(t, 1)
	statusTopic := kafkatest.UniqueName(t, "status")
	ran := make(chan struct{}, 1)
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(context.Context, *jobs.Job[statusOKArgs]) error {
		ran <- struct{}{}
		return nil
	}))
	logs := &logCapture{t: t}
	cfg := serverConfig(t, env, topic, ws)
	cfg.CreateTopics, cfg.DeadLetterTopic = nil, dlq
	cfg.StatusTopic, cfg.StatusInterval = statusTopic, 100*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	startJobServer(t, cfg)
	if _, err := newClient(t, env, topic).Enqueue(context.Background(), statusOKArgs{}); err != nil {
		t.Fatal(err)
	}
	waitForSignal(t, ran, "the job to run")
	kafkatest.WaitFor(t, 10*time.Second, "the log to say the status topic is missing", func() bool {
		return logs.count("status topic does not exist", "jobs.Config.CreateTopics") == 1
	})
	have, err := env.Admin.Partitions(context.Background(), statusTopic)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := have[statusTopic]; ok {
		t.Fatalf("ordo created the status topic %s without Config.CreateTopics", statusTopic)
	}
}
