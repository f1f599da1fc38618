package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// limitArgs is a job of the dead-letter limit tests: Reason is what its
// worker fails with, followed by HugeReason two-byte runes; Pad makes the
// job large.
type limitArgs struct {
	Key        string `msgpack:"key"`
	Reason     string `msgpack:"reason"`
	HugeReason int    `msgpack:"huge_reason"`
	Pad        []byte `msgpack:"pad,omitempty"`
}

func (limitArgs) Kind() string                      { return "limit" }
func (a limitArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// limitServer runs a server of limitArgs jobs whose worker fails each job
// that carries a Reason with that reason, permanently, and counts the runs
// of the others. It logs at Info into the returned buffer.
func limitServer(t *testing.T, env *kafkatest.Env, topic, dlq string) (*kafkatest.Log, jobs.Config, func() int) {
	t.Helper()
	var mu sync.Mutex
	ok := 0
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[limitArgs]) error {
		if j.Args.Reason != "" {
			return jobs.Permanent(errors.New(j.Args.Reason + strings.Repeat("é", j.Args.HugeReason)))
		}
		mu.Lock()
		ok++
		mu.Unlock()
		return nil
	}))
	logs := &kafkatest.Log{}
	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlq
	cfg.Backoff = supervision.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	startJobServer(t, cfg)
	return logs, cfg, func() int { mu.Lock(); defer mu.Unlock(); return ok }
}

// waitDeadLetters waits up to d for n dead letters, failing the test with
// how much was logged meanwhile when they do not come.
func waitDeadLetters(t *testing.T, dead func() []kafka.Record, n int, d time.Duration, logs *kafkatest.Log) []kafka.Record {
	t.Helper()
	arrived := false
	defer func() {
		if !arrived { // WaitFor failed the test: say what was logged meanwhile
			t.Logf("%d of %d dead letters; meanwhile %d bytes were logged, beginning %.300q", len(dead()), n, logs.Len(), logs.String())
		}
	}()
	kafkatest.WaitFor(t, d, fmt.Sprintf("%d dead letters", n), func() bool { return len(dead()) >= n })
	arrived = true
	return dead()
}

// A job whose error is 1 MB does not hold its key: its dead letter carries
// the reason cut to jobs.MaxReasonBytes with a marker saying how long it
// was, the partition's commit moves past it, and the log stays small.
func TestAJobErrorOfOneMegabyteIsCutInItsDeadLetterAndItsLog(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, dlq := env.Topic(t, 1), env.Topic(t, 1)
	// Two-byte runes, so that a cut at a fixed byte count would split one.
	huge := "upstream said: " + strings.Repeat("é", 512*1024)
	client := newClient(t, env, topic)
	ctx := context.Background()
	if _, err := client.Enqueue(ctx, limitArgs{Key: "k", Reason: "upstream said: ", HugeReason: 512 * 1024}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, limitArgs{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	logs, cfg, oks := limitServer(t, env, topic, dlq)
	dead := dlqCollector(t, env, dlq)

	r := waitDeadLetters(t, dead, 1, 30*time.Second, logs)[0]
	reason := headerOf(r, jobs.HeaderError)
	fullLen := len("permanent error: " + huge)
	marker := fmt.Sprintf("… [cut: %d bytes]", fullLen)
	if !strings.HasPrefix(reason, "permanent error: upstream said: éé") || !strings.HasSuffix(reason, marker) {
		t.Errorf("the reason header is %.80q…%q, want the reason's start and then %q", reason, reason[max(0, len(reason)-40):], marker)
	}
	if len(reason) > jobs.MaxReasonBytes || !utf8.ValidString(reason) {
		t.Errorf("the reason header is %d bytes (valid UTF-8: %v), want at most %d", len(reason), utf8.ValidString(reason), jobs.MaxReasonBytes)
	}
	waitCommittedToEnd(t, env, topic, cfg.Group)
	kafkatest.WaitFor(t, 30*time.Second, "the key's next job to run", func() bool { return oks() == 1 })
	if n := logs.Len(); n > 64<<10 {
		t.Errorf("the run logged %d bytes, want under 64 KiB", n)
	}
	if !strings.Contains(logs.String(), "[cut: "+strconv.Itoa(fullLen)+" bytes]") {
		t.Errorf("no log line names the cut reason: %.2000s", logs.String())
	}
}

// A dead letter the broker refuses as too large is written without the
// job's args, naming where they are (source topic, partition, offset) and
// why they were dropped, and the partition's commit moves past the job. The
// broker refuses it when the dead-letter topic allows smaller messages than
// the job topic; the producer refuses it when the job is near Kafka's
// default 1 MB limit and the dead-letter headers push it over.
func TestADeadLetterTooLargeToWriteIsWrittenWithoutItsArgs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		dlqConfig map[string]string
		pad       int
		reason    string
	}{
		{"the broker refuses it", map[string]string{"max.message.bytes": strconv.Itoa(64 << 10)}, 100 << 10, "declined"},
		{"the producer refuses it", nil, 1_044_000, strings.Repeat("r", 3000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := kafkatest.New(t)
			topic, dlq := env.Topic(t, 1), env.Topic(t, 1)
			if c.dlqConfig != nil {
				if err := env.Admin.SetTopicConfigs(context.Background(), dlq, c.dlqConfig); err != nil {
					t.Fatal(err)
				}
			}
			client := newClient(t, env, topic)
			ctx := context.Background()
			big, err := client.Enqueue(ctx, limitArgs{Key: "k", Reason: c.reason, Pad: bytes.Repeat([]byte{'p'}, c.pad)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.Enqueue(ctx, limitArgs{Key: "k"}); err != nil {
				t.Fatal(err)
			}
			logs, cfg, oks := limitServer(t, env, topic, dlq)
			dead := dlqCollector(t, env, dlq)

			r := waitDeadLetters(t, dead, 1, 30*time.Second, logs)[0]
			if len(r.Value) != 0 {
				t.Errorf("the dead letter carries %d bytes of value, want the args dropped", len(r.Value))
			}
			want := map[string]string{
				jobs.HeaderSourceTopic:     topic,
				jobs.HeaderSourcePartition: strconv.Itoa(big.Partition),
				jobs.HeaderSourceOffset:    strconv.FormatInt(big.Offset, 10),
				jobs.HeaderSourceKind:      "limit",
				jobs.HeaderJobID:           big.ID,
			}
			for h, v := range want {
				if got := headerOf(r, h); got != v {
					t.Errorf("header %s = %q, want %q", h, got, v)
				}
			}
			if e := headerOf(r, jobs.HeaderError); !strings.HasPrefix(e, "permanent error: ") {
				t.Errorf("the error header is %.100q, want the job's reason", e)
			}
			if d := headerOf(r, jobs.HeaderArgsDropped); !strings.Contains(d, "too large") {
				t.Errorf("header %s = %q, want it to say the dead letter with args was too large", jobs.HeaderArgsDropped, d)
			}
			waitCommittedToEnd(t, env, topic, cfg.Group)
			kafkatest.WaitFor(t, 30*time.Second, "the key's next job to run", func() bool { return oks() == 1 })
			if !strings.Contains(logs.String(), "writing it without the job's args") {
				t.Errorf("no log line says the dead letter was written without the args:\n%s", logs)
			}
			if n := logs.Len(); n > 64<<10 {
				t.Errorf("the run logged %d bytes, want under 64 KiB", n)
			}
		})
	}
}

// A dead letter the broker refuses even without the job's args (here: a
// dead-letter topic whose max.message.bytes no record fits) does not hold
// its key forever. After a few refusals the job is committed without a dead
// letter, and an ERROR line names where it is, so that it is not lost
// silently.
func TestADeadLetterRefusedEvenWithoutItsArgsIsLoggedAndTheKeyMovesOn(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, dlq := env.Topic(t, 1), env.Topic(t, 1)
	if err := env.Admin.SetTopicConfigs(context.Background(), dlq, map[string]string{"max.message.bytes": "64"}); err != nil {
		t.Fatal(err)
	}
	client := newClient(t, env, topic)
	ctx := context.Background()
	doomed, err := client.Enqueue(ctx, limitArgs{Key: "k", Reason: "declined"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, limitArgs{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	logs, cfg, oks := limitServer(t, env, topic, dlq)
	kafkatest.WaitFor(t, 30*time.Second, "the key's next job to run", func() bool { return oks() == 1 })
	waitCommittedToEnd(t, env, topic, cfg.Group)
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "dead letter refused by the broker") {
			line = l
		}
	}
	for _, want := range []string{"topic=" + topic, "partition=0", "offset=" + strconv.FormatInt(doomed.Offset, 10), "Message Size Too Large"} {
		if !strings.Contains(line, want) {
			t.Errorf("the ERROR line %q does not say %q; the log:\n%s", line, want, logs)
		}
	}
	end, err := env.Admin.EndOffsets(ctx, dlq)
	if err != nil {
		t.Fatal(err)
	}
	if end[0] != 0 {
		t.Errorf("the dead-letter topic holds %d records, want none", end[0])
	}
}
