package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/dashboard"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

// ordo runs the command in process, as a user would run the binary, and
// returns its exit status, stdout and stderr.
func ordo(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// mustOrdo is ordo for a command that must succeed.
func mustOrdo(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := ordo(t, args...)
	if code != 0 {
		t.Fatalf("ordo %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

type chargeArgs struct {
	Account string `msgpack:"account"`
	Cents   int64  `msgpack:"cents"`
}

func (chargeArgs) Kind() string { return "charge" }

// ledger is what the charge worker did, by job id.
type ledger struct {
	mu       sync.Mutex
	runs     map[string]int
	ok       map[string]int
	replays  map[string]string
	args     map[string]chargeArgs
	failOnce bool // fail each job's first run permanently
}

func newLedger(failOnce bool) *ledger {
	return &ledger{runs: map[string]int{}, ok: map[string]int{}, replays: map[string]string{},
		args: map[string]chargeArgs{}, failOnce: failOnce}
}

func (l *ledger) work(_ context.Context, j *jobs.Job[chargeArgs]) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[j.ID]++
	l.args[j.ID] = j.Args
	for _, h := range j.Headers {
		if h.Key == jobs.HeaderReplays {
			l.replays[j.ID] = string(h.Value)
		}
	}
	if l.failOnce && l.runs[j.ID] == 1 {
		return jobs.Permanent(errors.New("card declined"))
	}
	l.ok[j.ID]++
	return nil
}

func (l *ledger) succeeded() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ok)
}

func (l *ledger) totalRuns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.runs {
		n += r
	}
	return n
}

// cluster is a topic, its dead-letter topic and a status topic, on the test
// broker, with the flags that point ordo at them.
type cluster struct {
	env                     *kafkatest.Env
	topic, dlq, statusTopic string
	group                   string
}

func newCluster(t *testing.T, partitions int) *cluster {
	env := kafkatest.New(t)
	return &cluster{env: env, topic: env.Topic(t, partitions), dlq: env.Topic(t, 2), statusTopic: env.Topic(t, 1),
		group: env.Group(t)}
}

func (c *cluster) brokers() string { return strings.Join(c.env.Brokers, ",") }

// startServer starts a server of the cluster's group running l's worker.
func (c *cluster) startServer(t *testing.T, l *ledger) *jobs.Server {
	t.Helper()
	ws := jobs.NewWorkers()
	if err := jobs.AddWorker(ws, jobs.WorkFunc(l.work)); err != nil {
		t.Fatal(err)
	}
	s, err := jobs.NewServer(jobs.Config{
		Brokers: c.env.Brokers, Group: c.group, Topics: []string{c.topic}, Workers: ws,
		DeadLetterTopic: c.dlq, StatusTopic: c.statusTopic, StatusInterval: 200 * time.Millisecond,
		CreateTopics:      &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 20 * time.Second,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

type testWriter struct{ t testing.TB }

// Write logs a server's line, except the dead letters these tests make on
// purpose.
func (w testWriter) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte(`msg="ordo: job dead-lettered"`)) {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// enqueue enqueues n charges, one per account, and returns their ids.
func (c *cluster) enqueue(t *testing.T, n int) []string {
	t.Helper()
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: c.env.Brokers, Topic: c.topic})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	params := make([]jobs.EnqueueParams, n)
	for i := range params {
		params[i] = jobs.EnqueueParams{Args: chargeArgs{Account: "acct-" + strconv.Itoa(i), Cents: int64(i)},
			Opts: []jobs.EnqueueOption{jobs.WithKey("acct-" + strconv.Itoa(i))}}
	}
	infos, err := client.EnqueueMany(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i, info := range infos {
		ids[i] = info.ID
	}
	return ids
}

// partitionRow matches a row of the partition table of `ordo status`:
// group, topic, partition, member, lag (then buffered, prefetched, in
// flight, key actors and generation).
var partitionRow = regexp.MustCompile(`(?m)^(\S+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(?:\d+|-)\s+(?:\d+|-)\s+(\d+|-)\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+$`)

func TestStatusShowsBothMembersAndEveryPartitionOnce(t *testing.T) {
	t.Parallel()
	const partitions = 6
	c := newCluster(t, partitions)
	l := newLedger(false)
	a, b := c.startServer(t, l), c.startServer(t, l)
	<-a.Ready()
	<-b.Ready()
	c.enqueue(t, 60)
	kafkatest.WaitFor(t, 30*time.Second, "the jobs to run", func() bool { return l.succeeded() == 60 })

	var out string
	var owners map[int][]string
	kafkatest.WaitFor(t, 30*time.Second, "ordo status to show two members sharing every partition once, all caught up", func() bool {
		out = mustOrdo(t, "status", "--brokers", c.brokers(), "--status-topic", c.statusTopic)
		owners = map[int][]string{}
		for _, m := range partitionRow.FindAllStringSubmatch(out, -1) {
			if m[1] == c.group && m[2] == c.topic && m[5] == "0" {
				p, _ := strconv.Atoi(m[3])
				owners[p] = append(owners[p], m[4])
			}
		}
		members := map[string]bool{}
		for p := range partitions {
			if len(owners[p]) != 1 {
				return false
			}
			members[owners[p][0]] = true
		}
		return len(members) == 2 && strings.Contains(out, "1 groups, 2 members live, 0 gone, 6 partitions, total lag 0\n") &&
			strings.Contains(out, "jobs: 60 processed, 0 failed, 0 dead-lettered")
	})
	t.Logf("ordo status:\n%s", out)
	if strings.Count(out, " live ") < 2 {
		t.Errorf("the member table does not show two live members:\n%s", out)
	}
	if !strings.Contains(out, "charge") {
		t.Errorf("the kinds table does not show the charge kind:\n%s", out)
	}
}

// failAll enqueues n charges that fail on their first run, and waits until
// all n are in the dead-letter topic.
func failAll(t *testing.T, c *cluster, l *ledger, n int) []string {
	t.Helper()
	ids := c.enqueue(t, n)
	kafkatest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d dead letters", n), func() bool {
		out := mustOrdo(t, "dlq", "list", "--brokers", c.brokers(), "--topic", c.dlq)
		return strings.Contains(out, fmt.Sprintf("; %d in %s, 0 of them replayed", n, c.dlq))
	})
	return ids
}

func TestDLQReplayDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	l := newLedger(true)
	c.startServer(t, l)
	failAll(t, c, l, 10)
	jobsBefore, dlqBefore, runsBefore := c.env.Records(t, c.topic), c.env.Records(t, c.dlq), l.totalRuns()

	out := mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--all", "--dry-run")
	t.Logf("ordo dlq replay --all --dry-run:\n%s", out)
	if !strings.Contains(out, "dry run: 10 dead letters would be replayed; nothing was written") ||
		strings.Count(out, "would replay ") != 10 {
		t.Errorf("dry run output:\n%s", out)
	}
	if j, d := c.env.Records(t, c.topic), c.env.Records(t, c.dlq); j != jobsBefore || d != dlqBefore {
		t.Errorf("the dry run wrote records: job topic %d → %d, dead-letter topic %d → %d", jobsBefore, j, dlqBefore, d)
	}
	list := mustOrdo(t, "dlq", "list", "--brokers", c.brokers(), "--topic", c.dlq, "--pending")
	if !strings.Contains(list, "10 dead letters shown; 10 in "+c.dlq+", 0 of them replayed") {
		t.Errorf("after the dry run, dlq list says:\n%s", list)
	}
	if runs := l.totalRuns(); runs != runsBefore {
		t.Errorf("the dry run re-ran jobs: %d runs before, %d after", runsBefore, runs)
	}
}

func TestDLQReplayOf100DeadLettersRerunsEachOnce(t *testing.T) {
	t.Parallel()
	const n = 100
	c := newCluster(t, 4)
	l := newLedger(true)
	c.startServer(t, l)
	ids := failAll(t, c, l, n)

	show := mustOrdo(t, "dlq", "show", "--brokers", c.brokers(), "--topic", c.dlq, "0/0")
	if !strings.Contains(show, "kind            charge") || !strings.Contains(show, "card declined") ||
		strings.Contains(show, "acct-") && strings.Contains(show, "\"cents\"") {
		t.Errorf("dlq show:\n%s", show)
	}

	out := mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--all")
	t.Logf("ordo dlq replay --all (last lines):\n%s", lastLines(out, 3))
	if !strings.Contains(out, fmt.Sprintf("replayed %d of %d dead letters", n, n)) {
		t.Fatalf("replay output:\n%s", out)
	}
	kafkatest.WaitFor(t, 60*time.Second, "every replayed job to succeed", func() bool { return l.succeeded() == n })

	l.mu.Lock()
	for _, id := range ids {
		if l.ok[id] != 1 || l.runs[id] != 2 || l.replays[id] != "1" {
			t.Errorf("job %s: %d runs, %d succeeded, %s=%q; want 2 runs (failed, replayed), 1 success, replays 1",
				id, l.runs[id], l.ok[id], jobs.HeaderReplays, l.replays[id])
		}
	}
	l.mu.Unlock()

	list := mustOrdo(t, "dlq", "list", "--brokers", c.brokers(), "--topic", c.dlq, "--pending")
	if !strings.Contains(list, fmt.Sprintf("0 dead letters shown; %d in %s, %d of them replayed", n, c.dlq, n)) {
		t.Errorf("after the replay, dlq list --pending says:\n%s", lastLines(list, 2))
	}
	again := mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--all")
	if !strings.Contains(again, "no dead letter matches; nothing was written") {
		t.Errorf("a second replay --all:\n%s", again)
	}
	if runs := l.totalRuns(); runs != 2*n {
		t.Errorf("%d runs in all; want %d", runs, 2*n)
	}
}

func TestDLQReplayByPartitionRangeAndKind(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1)
	l := newLedger(true)
	c.startServer(t, l)
	failAll(t, c, l, 10)
	end, err := c.env.Admin.EndOffsets(context.Background(), c.dlq)
	if err != nil {
		t.Fatal(err)
	}
	p := 0
	if end[1] > end[0] {
		p = 1
	}
	out := mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--partition", strconv.Itoa(p), "--from", "0", "--to", "1")
	if !strings.Contains(out, "replayed 2 of 2 dead letters") {
		t.Errorf("replay --partition %d --from 0 --to 1:\n%s", p, out)
	}
	out = mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--kind", "refund", "--dry-run")
	if !strings.Contains(out, "dry run: 0 dead letters") {
		t.Errorf("replay --kind refund:\n%s", out)
	}
	out = mustOrdo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq, "--kind", "charge")
	if !strings.Contains(out, "replayed 8 of 8 dead letters") {
		t.Errorf("replay --kind charge after two were replayed:\n%s", out)
	}
	kafkatest.WaitFor(t, 60*time.Second, "the replayed jobs to succeed", func() bool { return l.succeeded() == 10 })
	code, _, errOut := ordo(t, "dlq", "replay", "--brokers", c.brokers(), "--topic", c.dlq)
	if code != 2 || !strings.Contains(errOut, "nothing selected") {
		t.Errorf("replay without a selection: exit %d, %s", code, errOut)
	}
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	cases := []struct {
		name, args string
		code       int
		stderr     string
	}{
		{"not JSON", `{"account": "a-1", cents: 5}`, 1, "--args-json: ops: args are not a JSON object: invalid character 'c'"},
		{"cut short", `{"account": "a-1"`, 1, "--args-json: ops: args are not a JSON object: unexpected EOF"},
		{"an array", `[1, 2]`, 1, "--args-json: ops: args are not a JSON object: got an array"},
		{"two objects", `{} {}`, 1, "more than one JSON value"},
		{"no args", ``, 2, "--args-json is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := ordo(t, "enqueue", "--brokers", c.brokers(), "--topic", c.topic, "--kind", "charge", "--args-json", tc.args)
			if code != tc.code || !strings.Contains(errOut, tc.stderr) || !strings.Contains(errOut, "") || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tc.code, tc.stderr)
			}
		})
	}
	if n := c.env.Records(t, c.topic); n != 0 {
		t.Fatalf("bad args wrote %d records", n)
	}

	l := newLedger(false)
	c.startServer(t, l)
	out := mustOrdo(t, "enqueue", "--brokers", c.brokers(), "--topic", c.topic, "--kind", "charge",
		"--args-json", `{"account": "a-1", "cents": 1250}`, "--key", "a-1")
	if !regexp.MustCompile(`^enqueued charge job \S+ to ` + regexp.QuoteMeta(c.topic) + `/\d+@0\n$`).MatchString(out) {
		t.Errorf("enqueue printed %q", out)
	}
	kafkatest.WaitFor(t, 30*time.Second, "the enqueued job to run", func() bool { return l.succeeded() == 1 })
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.args {
		if a != (chargeArgs{Account: "a-1", Cents: 1250}) {
			t.Errorf("the worker got %+v", a)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func TestWebAuthFlag(t *testing.T) {
	cases := []struct {
		flag, bearer, user, pass string
		bad                      bool
	}{
		{flag: ""},
		{flag: "bearer:s3cret", bearer: "s3cret"},
		{flag: "basic:ops:pa:ss", user: "ops", pass: "pa:ss"},
		{flag: "bearer:", bad: true},
		{flag: "basic:ops", bad: true},
		{flag: "token:x", bad: true},
	}
	for _, tc := range cases {
		var cfg dashboard.Config
		err := parseAuth(tc.flag, &cfg)
		if tc.bad {
			if !errors.Is(err, errUsage) {
				t.Errorf("--auth %q: %v; want a usage error", tc.flag, err)
			}
			continue
		}
		if err != nil || cfg.BearerToken != tc.bearer || cfg.BasicUser != tc.user || cfg.BasicPassword != tc.pass {
			t.Errorf("--auth %q: %v, %+v", tc.flag, err, cfg)
		}
	}
}

// "localhost" alone would mean port 9092 to kafka-go and reach whatever
// broker listens there: the command refuses it before connecting.
func TestBrokersWithoutAPortAreRefused(t *testing.T) {
	for _, cmd := range [][]string{{"status"}, {"dlq", "list", "--topic", "t.dlq"}, {"enqueue", "--topic", "t", "--kind", "k", "--args-json", "{}"}} {
		code, _, errOut := ordo(t, append(cmd, "--brokers", "127.0.0.1:9092,localhost")...)
		if code != 2 || !strings.Contains(errOut, "--brokers") || !strings.Contains(errOut, `"localhost" is not host:port`) {
			t.Errorf("ordo %s --brokers 127.0.0.1:9092,localhost: exit %d, stderr %q; want exit 2 naming --brokers and the address", strings.Join(cmd, " "), code, errOut)
		}
	}
}
