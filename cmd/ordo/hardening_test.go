package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// A Server run on a dead-letter topic (to re-run its dead letters) must see
// the markers a replay appends there as what they are: it commits them, and
// neither runs them nor dead-letters them into "<topic>.dlq".
func TestAServerOnADeadLetterTopicSkipsReplayMarkers(t *testing.T) {
	t.Parallel()
	const n = 5
	c := newCluster(t, 1)
	c.startServer(t, newLedger(true))
	failAll(t, c, nil, n)
	out := mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--all")
	if !strings.Contains(out, fmt.Sprintf("replayed %d of %d dead letters", n, n)) {
		t.Fatalf("replay output:\n%s", out)
	}
	records := c.env.Records(t, c.dlq) // n dead letters and n markers

	rerun := newLedger(false)
	group, dlqOfDLQ := c.env.Group(t), c.dlq+".dlq"
	ws := jobs.NewWorkers()
	if err := jobs.AddWorker(ws, jobs.WorkFunc(rerun.work)); err != nil {
		t.Fatal(err)
	}
	s, err := jobs.NewServer(jobs.Config{Brokers: c.env.Brokers, Group: group, Topics: []string{c.dlq}, Workers: ws,
		DeadLetterTopic: dlqOfDLQ, CreateTopics: &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if !c.env.Embedded {
		t.Cleanup(func() { _ = c.env.Admin.DeleteTopics(context.Background(), dlqOfDLQ) })
	}
	kafkatest.WaitFor(t, 60*time.Second, "the server on the dead-letter topic to commit all of it", func() bool {
		committed, err := c.env.Admin.CommittedOffsets(context.Background(), group, c.dlq)
		if err != nil {
			return false
		}
		var sum int64
		for _, o := range committed {
			sum += max(o, 0)
		}
		return sum == records
	})
	if got := rerun.succeeded(); got != n {
		t.Errorf("the server on the dead-letter topic ran %d dead letters; want %d", got, n)
	}
	if got := c.env.Records(t, dlqOfDLQ); got != 0 {
		for _, r := range c.env.ReadAll(t, dlqOfDLQ) {
			t.Logf("in %s: %d/%d error=%q", dlqOfDLQ, r.Partition, r.Offset, headerOf(r.Headers, jobs.HeaderError))
		}
		t.Errorf("the replay markers were dead-lettered: %s holds %d records; want 0", dlqOfDLQ, got)
	}
}

func headerOf(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestDLQListOnATopicOfJobsSaysItHoldsNoDeadLetters(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	c.enqueue(t, 3)
	for _, cmd := range [][]string{{"list"}, {"show", "0/0"}, {"replay", "--all", "--dry-run"}} {
		args := append([]string{"dlq", cmd[0], "--brokers", c.brokers(), "--topic", c.topic}, cmd[1:]...)
		code, out, errOut := ordo(t, args...)
		want := fmt.Sprintf("topic %q holds no dead letters", c.topic)
		if code != 1 || !strings.Contains(errOut, want) || strings.Contains(out, "charge") {
			t.Errorf("ordo dlq %s on a topic of jobs: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, no job listed, and %q",
				cmd[0], code, out, errOut, want)
		}
	}
}

// hostile is what an attacker who can write to Kafka, or a careless user,
// puts in a string the CLI prints: a window-title change, a screen clear, a
// carriage return that overwrites the line, a bell, invalid UTF-8, C1
// controls (U+009B is CSI on some terminals) and a bidi override.
const hostile = "\x1b]0;pwned\x07\x1b[2J\x1b[Hover\rwrite\nline\tTAB\x7fDEL\xff\xfe\xc0bad\u009b31m\u0085\u202etxt.exe\u2066iso"

// bigHostile is a string of 1 MB (less room for the rest of its record,
// under the broker's default limit) with control bytes throughout.
var bigHostile = strings.Repeat("A\x1b[31m"+strings.Repeat("x", 1000), (1<<20-20<<10)/1006)

// terminalSafe fails the test when out holds a byte a terminal acts on:
// C0 controls other than the output's own newlines and tabs, DEL, C1
// controls, bidi overrides and isolates, or invalid UTF-8. maxLine, when
// positive, bounds the length of a line.
func terminalSafe(t *testing.T, what, out string, maxLine int) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s: the output is not valid UTF-8", what)
	}
	bad := map[string]int{}
	for _, r := range out {
		switch {
		case r < 0x20 && r != '\n' && r != '\t', r == 0x7f, r >= 0x80 && r <= 0x9f,
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			bad[fmt.Sprintf("%U", r)]++
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: the output holds control characters: %v\n%.2000q", what, bad, out)
	}
	if maxLine > 0 {
		for i, line := range strings.Split(out, "\n") {
			if len(line) > maxLine {
				t.Errorf("%s: line %d is %d bytes long; want at most %d", what, i+1, len(line), maxLine)
				break
			}
		}
	}
}

type hostileArgs struct {
	Note string `msgpack:"note"`
}

func (hostileArgs) Kind() string { return "charge" }

func TestCLIEscapesHostileBytes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	ctx := context.Background()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: c.env.Brokers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// A status report whose every string is hostile.
	now := time.Now().UTC()
	report := &status.Report{Version: status.Version, Group: "g" + hostile, Member: "m" + hostile, Host: hostile,
		OrdoVersion: hostile, Started: now.Add(-time.Minute), At: now, IntervalMS: 60_000, DeadLetterTopic: hostile,
		Partitions: []status.Partition{{Topic: hostile, Partition: 0, Committed: 1, HighWatermark: 2, Lag: 1}},
		Kinds:      []status.KindCounts{{Kind: hostile, Processed: 1, Failed: 1}},
		Errors: []status.JobError{{At: now, Kind: hostile, JobID: hostile, Key: hostile, Topic: hostile,
			Message: hostile + bigHostile, DeadLettered: true}}}
	value, err := status.Encode(report)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ProduceSync(ctx, kafka.Message{Topic: c.statusTopic, Key: status.Key(report.Group, report.Member), Value: value}); err != nil {
		t.Fatal(err)
	}

	// A dead letter whose job, key, headers and reason are hostile.
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: c.env.Brokers, Topic: c.topic, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, hostileArgs{Note: hostile}); err != nil {
		t.Fatal(err)
	}
	_ = client.Close()
	job := c.env.ReadAll(t, c.topic)[0]
	headers := append(job.Headers,
		kafka.Header{Key: jobs.HeaderSourceTopic, Value: []byte(hostile)},
		kafka.Header{Key: jobs.HeaderSourcePartition, Value: []byte("0")},
		kafka.Header{Key: jobs.HeaderSourceOffset, Value: []byte("0")},
		kafka.Header{Key: jobs.HeaderSourceGroup, Value: []byte(hostile)},
		kafka.Header{Key: jobs.HeaderSourceKind, Value: []byte(hostile)},
		kafka.Header{Key: jobs.HeaderError, Value: []byte(hostile + bigHostile)},
		kafka.Header{Key: "h" + hostile, Value: []byte(hostile)})
	if _, err := p.ProduceSync(ctx, kafka.Message{Topic: c.dlq, PartitionKey: []byte("k"), Key: []byte(hostile), Value: job.Value, Headers: headers}); err != nil {
		t.Fatal(err)
	}
	end, err := c.env.Admin.EndOffsets(ctx, c.dlq)
	if err != nil {
		t.Fatal(err)
	}
	id := "0/0"
	if end[0] == 0 {
		id = "1/0"
	}

	b := c.brokers()
	cases := []struct {
		name    string
		args    []string
		maxLine int // list views cut long strings
	}{
		{"status", []string{"status", "--brokers", b, "--status-topic", c.statusTopic}, 4096},
		{"dlq list", []string{"dlq", "list", "--brokers", b, "--topic", c.dlq}, 4096},
		{"dlq show", []string{"dlq", "show", "--brokers", b, "--topic", c.dlq, "--show-payload", id}, 0},
		{"dlq replay --dry-run", []string{"dlq", "replay", "--brokers", b, "--topic", c.dlq, "--all", "--dry-run"}, 4096},
		{"dlq replay", []string{"dlq", "replay", "--brokers", b, "--topic", c.dlq, "--all"}, 0},
		{"dlq show of a hostile id", []string{"dlq", "show", "--brokers", b, "--topic", c.dlq, hostile}, 4096},
		{"dlq list of a hostile topic", []string{"dlq", "list", "--brokers", b, "--topic", hostile}, 4096},
		{"enqueue", []string{"enqueue", "--brokers", b, "--topic", c.topic, "--kind", hostile, "--key", hostile,
			"--args-json", `{"note": "\u001b]0;x\u0007\u009b\u202e"}`}, 4096},
		{"enqueue of hostile JSON", []string{"enqueue", "--brokers", b, "--topic", c.topic, "--kind", "k", "--args-json", hostile}, 4096},
		{"a hostile flag", []string{"status", "--" + hostile}, 4096},
		{"a hostile subcommand", []string{hostile}, 4096},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := ordo(t, tc.args...)
			t.Logf("exit %d, %d bytes on stdout, %d on stderr", code, len(out), len(errOut))
			terminalSafe(t, "stdout", out, tc.maxLine)
			terminalSafe(t, "stderr", errOut, tc.maxLine)
		})
	}
	// What was escaped can still be read.
	show := mustOrdo(t, "dlq", "show", "--brokers", b, "--topic", c.dlq, id)
	if !strings.Contains(show, `\x1b]0;pwned\a\x1b[2J`) || !strings.Contains(show, `\xff\xfe\xc0bad\u009b31m`) {
		t.Errorf("dlq show does not show the hostile kind escaped:\n%.3000q", show)
	}
}

// A secret given by environment variable is never printed: not in -h, not in
// the usage a mistyped flag prints.
func TestSecretsStayOutOfUsage(t *testing.T) {
	const password, token = "hunter2-sasl-secret", "bearer:web-secret-token"
	t.Setenv("ORDO_SASL_PASSWORD", password)
	t.Setenv("ORDO_WEB_AUTH", token)
	cmds := [][]string{{"status"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "replay"}, {"enqueue"}, {"web"}}
	for _, cmd := range cmds {
		for _, extra := range []string{"-h", "--no-such-flag"} {
			_, out, errOut := ordo(t, append(cmd, extra)...)
			for _, secret := range []string{password, "web-secret-token"} {
				if strings.Contains(out+errOut, secret) {
					t.Errorf("ordo %s %s prints the secret %q: %s", strings.Join(cmd, " "), extra, secret, linesWith(out+errOut, secret))
				}
			}
		}
	}
}

func linesWith(s, sub string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func TestWebAllowedHostsFlag(t *testing.T) {
	cases := []struct {
		flag, listen string
		want         []string
	}{
		{"", "127.0.0.1:8080", nil},
		{"", ":8080", nil},
		{"ops.example.com, ops:8080,", "0.0.0.0:8080", []string{"ops.example.com", "ops:8080"}},
		{"", "ops.internal:8080", []string{"ops.internal"}},
	}
	for _, tc := range cases {
		if got := hostList(tc.flag, tc.listen); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("--allowed-hosts %q --listen %s: %q; want %q", tc.flag, tc.listen, got, tc.want)
		}
	}
}

func TestTerminalWriterEscapesARuneCutBetweenWritesOnce(t *testing.T) {
	var out strings.Builder
	w := &terminalWriter{w: &out}
	rlo := []byte("a\u202eb") // U+202E is three bytes
	_, _ = w.Write(rlo[:2])
	_, _ = w.Write(rlo[2:])
	_, _ = w.Write([]byte("\tc\n\xe2"))
	w.Flush()
	if got, want := out.String(), `a\u202eb`+"\tc\n"+`\xe2`; got != want {
		t.Errorf("wrote %q; want %q", got, want)
	}
}
