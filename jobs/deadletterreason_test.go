package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

// A dead letter's reason says "permanent" once, also when the Permanent
// error is wrapped.
func TestADeadLetterReasonSaysPermanentOnce(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, dlq := env.Topic(t, 1), env.Topic(t, 1)
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[failArgs]) error {
		err := jobs.Permanent(errors.New("card declined"))
		if j.Args.Mode == "wrapped" {
			err = fmt.Errorf("charge order 7: %w", err)
		}
		var perm *jobs.PermanentError
		if !errors.As(err, &perm) || perm.Error() != "permanent: card declined" {
			t.Errorf("errors.As found %v in %v", perm, err)
		}
		return err
	}))
	client := newClient(t, env, topic)
	for _, mode := range []string{"plain", "wrapped"} {
		if _, err := client.Enqueue(context.Background(), failArgs{Key: mode, Mode: mode}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlq
	startJobServer(t, cfg)
	dead := dlqCollector(t, env, dlq)
	kafkatest.WaitFor(t, 30*time.Second, "two dead letters", func() bool { return len(dead()) == 2 })
	want := map[string]string{
		"plain":   "permanent error: card declined",
		"wrapped": "permanent error: charge order 7: card declined",
	}
	for _, r := range dead() {
		if got := headerOf(r, jobs.HeaderError); got != want[string(r.Key)] {
			t.Errorf("%s: the reason header is %q, want %q", r.Key, got, want[string(r.Key)])
		}
	}
}
