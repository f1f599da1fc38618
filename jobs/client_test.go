package jobs_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// orderUpdateArgs keeps each user's jobs in order with the user id as the
// message key (KeyTypeKey).
type orderUpdateArgs struct {
	UserID string `msgpack:"user_id"`
	Seq    int    `msgpack:"seq"`
	Note   string `msgpack:"note,omitempty"`
}

func (orderUpdateArgs) Kind() string { return "order_update" }
func (a orderUpdateArgs) Partitioning() jobs.Partitioning {
	return jobs.Partitioning{Value: a.UserID}
}

// userSyncArgs keeps each user's jobs on one partition without a key
// (KeyTypePartitionKey).
type userSyncArgs struct {
	UserID string `msgpack:"user_id"`
	Seq    int    `msgpack:"seq"`
}

func (userSyncArgs) Kind() string { return "user_sync" }
func (a userSyncArgs) Partitioning() jobs.Partitioning {
	return jobs.Partitioning{Value: a.UserID, Type: jobs.KeyTypePartitionKey}
}

// plainArgs has no partitioning: its jobs go to any partition.
type plainArgs struct{ N int }

func (plainArgs) Kind() string { return "plain" }

type emptyKindArgs struct{}

func (emptyKindArgs) Kind() string { return "" }

type unencodableArgs struct{ Ch chan int }

func (unencodableArgs) Kind() string { return "unencodable" }

type partitioningArgs struct{ p jobs.Partitioning }

func (partitioningArgs) Kind() string                      { return "partitioning" }
func (a partitioningArgs) Partitioning() jobs.Partitioning { return a.p }

func TestJobsOfAKeyShareAPartitionAndCarryTheKey(t *testing.T) {
	t.Parallel()
	const partitions, users, perUser = 8, 20, 10
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	client := enqueueClient(t, env, topic)
	ctx := context.Background()

	infos := map[string]jobs.JobInfo{} // by job id
	for seq := range perUser {
		for u := range users {
			info, err := client.Enqueue(ctx, orderUpdateArgs{UserID: "user-" + strconv.Itoa(u), Seq: seq})
			if err != nil {
				t.Fatal(err)
			}
			infos[info.ID] = info
		}
	}

	recs := env.ReadAll(t, topic)
	if len(recs) != users*perUser {
		t.Fatalf("read %d records, enqueued %d jobs", len(recs), users*perUser)
	}
	partitionOf, lastSeq := map[string]int{}, map[string]int{}
	for _, r := range recs {
		e, args := decodeJob[orderUpdateArgs](t, r)
		user := args.UserID
		if string(r.Key) != user {
			t.Errorf("job of %s carries key %q, want the user id", user, r.Key)
		}
		if want := kafka.Murmur2Partition([]byte(user), partitions); r.Partition != want {
			t.Errorf("job of %s is on partition %d; murmur2 (the Java client) picks %d", user, r.Partition, want)
		}
		if p, ok := partitionOf[user]; ok && p != r.Partition {
			t.Errorf("jobs of %s are on partitions %d and %d", user, p, r.Partition)
		}
		partitionOf[user] = r.Partition
		if seq, ok := lastSeq[user]; ok && args.Seq != seq+1 {
			t.Errorf("job %d of %s follows job %d in its partition", args.Seq, user, seq)
		}
		lastSeq[user] = args.Seq
		if v := headerValue(r, jobs.HeaderPartitionKey); v != "" {
			t.Errorf("a keyed job carries %s %q", jobs.HeaderPartitionKey, v)
		}
		info := infos[e.ID]
		if info.Partition != r.Partition || info.Offset != r.Offset || info.Key != user || info.PartitionKey != "" {
			t.Errorf("JobInfo %+v does not describe the record at %d@%d", info, r.Partition, r.Offset)
		}
	}
}

func TestPartitionKeyJobsShareAPartitionWithoutAKey(t *testing.T) {
	t.Parallel()
	const partitions, users, perUser = 12, 30, 5
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	client := enqueueClient(t, env, topic)

	var params []jobs.EnqueueParams
	for seq := range perUser {
		for u := range users {
			params = append(params, jobs.EnqueueParams{Args: userSyncArgs{UserID: "user-" + strconv.Itoa(u), Seq: seq}})
		}
	}
	infos, err := client.EnqueueMany(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if info.Key != "" || !strings.HasPrefix(info.PartitionKey, "user-") {
			t.Fatalf("JobInfo %+v: want a partition key and no key", info)
		}
	}

	recs := env.ReadAll(t, topic)
	if len(recs) != len(params) {
		t.Fatalf("read %d records, enqueued %d jobs", len(recs), len(params))
	}
	lastSeq := map[string]int{}
	for _, r := range recs {
		_, args := decodeJob[userSyncArgs](t, r)
		user := args.UserID
		if r.Key != nil {
			t.Errorf("a partition-key job of %s carries key %q, want none", user, r.Key)
		}
		if want := kafka.Murmur2Partition([]byte(user), partitions); r.Partition != want {
			t.Errorf("job of %s is on partition %d, want Murmur2Partition = %d", user, r.Partition, want)
		}
		if v := headerValue(r, jobs.HeaderPartitionKey); v != user {
			t.Errorf("job of %s: %s header is %q, want the partition key", user, jobs.HeaderPartitionKey, v)
		}
		if seq, ok := lastSeq[user]; ok && args.Seq != seq+1 {
			t.Errorf("job %d of %s follows job %d in its partition", args.Seq, user, seq)
		}
		lastSeq[user] = args.Seq
	}
}

func TestEnqueueManySendsJobsThatDecode(t *testing.T) {
	t.Parallel()
	const n = 500
	env := kafkatest.New(t)
	topic := env.Topic(t, 4)
	client := enqueueClient(t, env, topic)

	params := make([]jobs.EnqueueParams, n)
	for i := range params {
		switch i % 3 {
		case 0:
			params[i].Args = orderUpdateArgs{UserID: "u" + strconv.Itoa(i%7), Seq: i}
		case 1:
			params[i].Args = userSyncArgs{UserID: "u" + strconv.Itoa(i%7), Seq: i}
		default:
			params[i].Args = plainArgs{N: i}
		}
		params[i].Opts = []jobs.EnqueueOption{
			jobs.WithMetadata(map[string]string{"i": strconv.Itoa(i)}),
			jobs.WithHeaders(map[string]string{"trace-id": "t" + strconv.Itoa(i)}),
		}
	}
	before := time.Now()
	infos, err := client.EnqueueMany(context.Background(), params)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != n {
		t.Fatalf("%d infos for %d jobs", len(infos), n)
	}

	byID := map[string]int{}
	for i, info := range infos {
		if info.Kind != params[i].Args.Kind() || info.Topic != topic || info.Partition < 0 {
			t.Errorf("infos[%d] = %+v", i, info)
		}
		byID[info.ID] = i
	}
	if len(byID) != n {
		t.Fatalf("%d distinct job ids for %d jobs", len(byID), n)
	}
	recs := env.ReadAll(t, topic)
	if len(recs) != n {
		t.Fatalf("read %d records, enqueued %d jobs", len(recs), n)
	}
	for _, r := range recs {
		e, err := envelope.Decode(r.Value)
		if err != nil {
			t.Fatalf("record %d@%d: %v", r.Partition, r.Offset, err)
		}
		i, ok := byID[e.ID]
		if !ok {
			t.Fatalf("record %d@%d has job id %q, which EnqueueMany did not return", r.Partition, r.Offset, e.ID)
		}
		info := infos[i]
		if info.Partition != r.Partition || info.Offset != r.Offset {
			t.Errorf("infos[%d] says %d@%d, the record is at %d@%d", i, info.Partition, info.Offset, r.Partition, r.Offset)
		}
		if e.Version != jobs.EnvelopeVersion || e.Kind != info.Kind || e.Attempt != 0 || e.Metadata["i"] != strconv.Itoa(i) {
			t.Errorf("job %d: envelope %+v", i, e)
		}
		if e.EnqueuedAt.Before(before.Add(-time.Millisecond)) || e.EnqueuedAt.After(after) || !e.EnqueuedAt.Equal(info.EnqueuedAt) {
			t.Errorf("job %d: enqueued at %v, not between %v and %v", i, e.EnqueuedAt, before, after)
		}
		if k := headerValue(r, jobs.HeaderKind); k != e.Kind {
			t.Errorf("job %d: %s header %q, envelope kind %q", i, jobs.HeaderKind, k, e.Kind)
		}
		if id := headerValue(r, jobs.HeaderJobID); id != e.ID {
			t.Errorf("job %d: %s header %q, envelope id %q", i, jobs.HeaderJobID, id, e.ID)
		}
		if v := headerValue(r, "trace-id"); v != "t"+strconv.Itoa(i) {
			t.Errorf("job %d: trace-id header %q", i, v)
		}
		var got plainArgs
		if e.Kind == "plain" {
			if err := msgpack.Unmarshal(e.Args, &got); err != nil || got.N != i {
				t.Errorf("job %d: args decode to %+v, %v", i, got, err)
			}
		}
	}
}

func TestOptionsOverrideTheArgsPartitioning(t *testing.T) {
	t.Parallel()
	const partitions = 6
	env := kafkatest.New(t)
	topic, other := env.Topic(t, partitions), env.Topic(t, 1)
	client := enqueueClient(t, env, topic)
	ctx := context.Background()
	args := orderUpdateArgs{UserID: "user-1"}
	cases := []struct {
		name             string
		opts             []jobs.EnqueueOption
		topic            string
		key, partitionBy string
	}{
		{"the args' partitioning", nil, topic, "user-1", "user-1"},
		{"WithKey", []jobs.EnqueueOption{jobs.WithKey("acct-9")}, topic, "acct-9", "acct-9"},
		{"WithPartitionKey", []jobs.EnqueueOption{jobs.WithPartitionKey("shard-3")}, topic, "", "shard-3"},
		{"WithKey and WithPartitionKey", []jobs.EnqueueOption{jobs.WithKey("acct-9"), jobs.WithPartitionKey("shard-3")}, topic, "acct-9", "shard-3"},
		{"WithTopic", []jobs.EnqueueOption{jobs.WithTopic(other)}, other, "user-1", "user-1"},
	}
	byID := map[string]int{}
	for i, c := range cases {
		info, err := client.Enqueue(ctx, args, c.opts...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		byID[info.ID] = i
	}
	recs := append(env.ReadAll(t, topic), env.ReadAll(t, other)...)
	if len(recs) != len(cases) {
		t.Fatalf("read %d records, enqueued %d jobs", len(recs), len(cases))
	}
	for _, r := range recs {
		c := cases[byID[headerValue(r, jobs.HeaderJobID)]]
		n := partitions
		if c.topic == other {
			n = 1
		}
		if r.Topic != c.topic || string(r.Key) != c.key || r.Partition != kafka.Murmur2Partition([]byte(c.partitionBy), n) {
			t.Errorf("%s: record on %s/%d with key %q; want %s, key %q, partition of %q", c.name, r.Topic, r.Partition, r.Key, c.topic, c.key, c.partitionBy)
		}
		wantHeader := ""
		if c.key != c.partitionBy {
			wantHeader = c.partitionBy
		}
		if v := headerValue(r, jobs.HeaderPartitionKey); v != wantHeader {
			t.Errorf("%s: %s header %q, want %q", c.name, jobs.HeaderPartitionKey, v, wantHeader)
		}
	}
}

// TestEnqueueFailuresAreReportedNeverDropped: every way an enqueue can fail
// reaches the caller, sync as an error and async through done, exactly once.
func TestEnqueueFailuresAreReportedNeverDropped(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 3)
	// The broker refuses records above the topic's max.message.bytes, after
	// the client has queued them.
	tight := kafkatest.UniqueName(t, "topic")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.Admin.CreateTopics(ctx, kafka.Topic{Name: tight, Partitions: 1, Configs: map[string]string{"max.message.bytes": "1024"}}); err != nil {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), tight) })
	}
	huge := orderUpdateArgs{UserID: "u", Note: strings.Repeat("x", 4096)}
	client := enqueueClient(t, env, topic)

	t.Run("sync: the broker refuses the job", func(t *testing.T) {
		info, err := client.Enqueue(ctx, huge, jobs.WithTopic(tight))
		if err == nil {
			t.Fatal("Enqueue of a job bigger than max.message.bytes returned no error")
		}
		if !strings.Contains(err.Error(), info.ID) || info.Partition != -1 {
			t.Errorf("error %q / info %+v: want the error to name job %s and the info Partition -1", err, info, info.ID)
		}
	})

	t.Run("async: every done runs once", func(t *testing.T) {
		const good = 200
		outcomes := newAsyncOutcomes()
		for i := range good {
			client.EnqueueAsync(ctx, plainArgs{N: i}, outcomes.done(fmt.Sprint("good-", i)))
		}
		client.EnqueueAsync(ctx, huge, outcomes.done("too big"), jobs.WithTopic(tight))
		client.EnqueueAsync(ctx, nil, outcomes.done("nil args"))
		client.EnqueueAsync(ctx, plainArgs{}, outcomes.done("empty key"), jobs.WithKey(""))
		outcomes.wait(t, good+3, 30*time.Second)
		for i := range good {
			if o := outcomes.get(fmt.Sprint("good-", i)); o.err != nil || o.info.Partition < 0 || o.info.Topic != topic {
				t.Errorf("job %d: done got %+v, %v", i, o.info, o.err)
			}
		}
		if o := outcomes.get("too big"); o.err == nil || errors.Is(o.err, jobs.ErrInvalidEnqueue) || o.info.ID == "" {
			t.Errorf("job bigger than max.message.bytes: done got %+v, %v; want the broker's error and the job's info", o.info, o.err)
		}
		for _, name := range []string{"nil args", "empty key"} {
			if o := outcomes.get(name); !errors.Is(o.err, jobs.ErrInvalidEnqueue) {
				t.Errorf("%s: done got %v, want ErrInvalidEnqueue", name, o.err)
			}
		}
	})

	t.Run("async: the broker is unreachable", func(t *testing.T) {
		unreachable, err := jobs.NewClient(jobs.ClientConfig{Brokers: []string{"127.0.0.1:1"}, Topic: topic, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer unreachable.Close()
		outcomes := newAsyncOutcomes()
		unreachable.EnqueueAsync(ctx, plainArgs{}, outcomes.done("unreachable"))
		outcomes.wait(t, 1, 10*time.Second)
		if o := outcomes.get("unreachable"); o.err == nil {
			t.Error("done got no error for a job sent to an unreachable broker")
		}
	})

	t.Run("after Close", func(t *testing.T) {
		closed := enqueueClient(t, env, topic)
		if err := closed.Close(); err != nil {
			t.Fatal(err)
		}
		outcomes := newAsyncOutcomes()
		closed.EnqueueAsync(ctx, plainArgs{}, outcomes.done("closed"))
		outcomes.wait(t, 1, 10*time.Second)
		if o := outcomes.get("closed"); !errors.Is(o.err, jobs.ErrClientClosed) {
			t.Errorf("EnqueueAsync after Close: done got %v, want ErrClientClosed", o.err)
		}
		if _, err := closed.Enqueue(ctx, plainArgs{}); !errors.Is(err, jobs.ErrClientClosed) {
			t.Errorf("Enqueue after Close returned %v, want ErrClientClosed", err)
		}
		if _, err := closed.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: plainArgs{}}}); !errors.Is(err, jobs.ErrClientClosed) {
			t.Errorf("EnqueueMany after Close returned %v, want ErrClientClosed", err)
		}
	})
}

// TestCloseWaitsForAsyncEnqueues: when Close returns, every job enqueued
// asynchronously before it was acknowledged and its done ran.
func TestCloseWaitsForAsyncEnqueues(t *testing.T) {
	t.Parallel()
	const n = 1000
	env := kafkatest.New(t)
	topic := env.Topic(t, 2)
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := newAsyncOutcomes()
	for i := range n {
		client.EnqueueAsync(context.Background(), orderUpdateArgs{UserID: "u" + strconv.Itoa(i%10), Seq: i}, outcomes.done(strconv.Itoa(i)))
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if got := outcomes.count(); got != n {
		t.Fatalf("Close returned with %d of %d dones run", got, n)
	}
	for i := range n {
		if o := outcomes.get(strconv.Itoa(i)); o.err != nil {
			t.Fatalf("job %d: %v", i, o.err)
		}
	}
	if recs := env.ReadAll(t, topic); len(recs) != n {
		t.Fatalf("read %d records after Close, enqueued %d", len(recs), n)
	}
}

func TestInvalidEnqueuesNameWhatIsWrongAndSendNothing(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	client := enqueueClient(t, env, topic)
	noTopic, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = noTopic.Close() })
	ctx := context.Background()
	cases := []struct {
		name   string
		client *jobs.Client
		args   jobs.JobArgs
		opts   []jobs.EnqueueOption
		want   string
	}{
		{"nil args", client, nil, nil, "args are nil"},
		{"a nil pointer", client, (*plainArgs)(nil), nil, "args are nil"},
		{"an empty kind", client, emptyKindArgs{}, nil, "emptyKindArgs.Kind() returned an empty kind"},
		{"no topic", noTopic, plainArgs{}, nil, "set ClientConfig.Topic or pass WithTopic"},
		{"an empty key", client, plainArgs{}, []jobs.EnqueueOption{jobs.WithKey("")}, "WithKey"},
		{"an empty partition key", client, plainArgs{}, []jobs.EnqueueOption{jobs.WithPartitionKey("")}, "WithPartitionKey"},
		{"an empty partitioning value", client, partitioningArgs{}, nil, "partitioningArgs.Partitioning() returned an empty Value"},
		{"an unknown key type", client, partitioningArgs{jobs.Partitioning{Value: "v", Type: 9}}, nil, "unknown KeyType 9"},
		{"an empty WithTopic", client, plainArgs{}, []jobs.EnqueueOption{jobs.WithTopic("")}, "WithTopic"},
		{"an invalid WithTopic", client, plainArgs{}, []jobs.EnqueueOption{jobs.WithTopic("a:b")}, "WithTopic"},
		{"an ordo header", client, plainArgs{}, []jobs.EnqueueOption{jobs.WithHeaders(map[string]string{jobs.HeaderKind: "x"})}, jobs.HeaderKind},
		{"args that do not encode", client, unencodableArgs{Ch: make(chan int)}, nil, "encode args of unencodable job"},
	}
	for _, c := range cases {
		_, err := c.client.Enqueue(ctx, c.args, c.opts...)
		if !errors.Is(err, jobs.ErrInvalidEnqueue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Enqueue returned %v; want ErrInvalidEnqueue saying %q", c.name, err, c.want)
		}
		valid := jobs.EnqueueParams{Args: plainArgs{}, Opts: []jobs.EnqueueOption{jobs.WithTopic(topic)}}
		_, err = c.client.EnqueueMany(ctx, []jobs.EnqueueParams{valid, {Args: c.args, Opts: c.opts}})
		if !errors.Is(err, jobs.ErrInvalidEnqueue) || !strings.Contains(err.Error(), "params[1]") {
			t.Errorf("%s: EnqueueMany returned %v; want ErrInvalidEnqueue naming params[1]", c.name, err)
		}
	}
	end, err := env.Admin.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if end[0] != 0 {
		t.Errorf("invalid enqueues wrote %d records; EnqueueMany must send nothing when one job is invalid", end[0])
	}
}

// PeriodicName and PeriodicMissedTicks are EnqueueOptions, so that Periodic
// takes one option style, but they mean nothing to an enqueue call: each
// call refuses them, naming the option, before anything is sent.
func TestPeriodicOnlyOptionsAreRefusedByEnqueueCalls(t *testing.T) {
	t.Parallel()
	// Nothing is sent, so no broker is needed.
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "periodic-only", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	for _, c := range []struct {
		name string
		opt  jobs.EnqueueOption
	}{
		{"PeriodicName", jobs.PeriodicName("n")},
		{"PeriodicMissedTicks", jobs.PeriodicMissedTicks(jobs.MissedSkip)},
	} {
		want := c.name + " is for jobs.Periodic only"
		refused := func(call string, err error) {
			t.Helper()
			if !errors.Is(err, jobs.ErrInvalidEnqueue) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s with %s returned %v; want ErrInvalidEnqueue saying %q", call, c.name, err, want)
			}
		}
		_, err := client.Enqueue(ctx, plainArgs{}, jobs.WithKey("k"), c.opt)
		refused("Enqueue", err)
		_, err = client.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: plainArgs{}}, {Args: plainArgs{}, Opts: []jobs.EnqueueOption{c.opt}}})
		refused("EnqueueMany", err)
		done := make(chan error, 1)
		client.EnqueueAsync(ctx, plainArgs{}, func(_ jobs.JobInfo, err error) { done <- err }, c.opt)
		refused("EnqueueAsync", <-done)
		_, err = client.Cancel(ctx, "job-1", c.opt)
		refused("Cancel", err)
	}
}

func TestNewClientNamesTheBadSetting(t *testing.T) {
	for _, c := range []struct {
		cfg  jobs.ClientConfig
		want string
	}{
		{jobs.ClientConfig{Topic: "jobs"}, "jobs.ClientConfig.Brokers"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092", ""}}, "jobs.ClientConfig.Brokers[1]"},
		{jobs.ClientConfig{Brokers: []string{"localhost"}, Topic: "jobs"}, "jobs.ClientConfig.Brokers[0]"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092", "::1"}, Topic: "jobs"}, "jobs.ClientConfig.Brokers[1]"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "my jobs"}, "jobs.ClientConfig.Topic"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "."}, "jobs.ClientConfig.Topic"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, Security: &jobs.Security{SASL: &jobs.SASL{Mechanism: jobs.SASLPlain}}},
			"jobs.ClientConfig.Security"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, Middleware: []jobs.Middleware{nil}}, "jobs.ClientConfig.Middleware[0]"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, UnknownTopicWait: -time.Second}, "jobs.ClientConfig.UnknownTopicWait"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, UnknownTopicWait: 2 * time.Hour}, "jobs.ClientConfig.UnknownTopicWait"},
		{jobs.ClientConfig{Brokers: []string{"127.0.0.1:9092"}, MaxMessageBytes: -1}, "jobs.ClientConfig.MaxMessageBytes"},
	} {
		_, err := jobs.NewClient(c.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), "invalid configuration: "+c.want+":") || !errors.Is(err, jobs.ErrInvalidConfig) {
			t.Errorf("NewClient(%+v) returned %v, want an error naming %s that wraps jobs.ErrInvalidConfig", c.cfg, err, c.want)
		}
	}
}

func enqueueClient(t *testing.T, env *kafkatest.Env, topic string) *jobs.Client {
	t.Helper()
	c, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// decodeJob decodes a job record's envelope and args, failing the test if
// either does not decode.
func decodeJob[T jobs.JobArgs](t *testing.T, r kafka.Record) (*envelope.Envelope, T) {
	t.Helper()
	var args T
	e, err := envelope.Decode(r.Value)
	if err != nil {
		t.Fatalf("record %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
	}
	if err := msgpack.Unmarshal(e.Args, &args); err != nil {
		t.Fatalf("record %s/%d@%d: args: %v", r.Topic, r.Partition, r.Offset, err)
	}
	if e.Kind != args.Kind() || headerValue(r, jobs.HeaderKind) != e.Kind || headerValue(r, jobs.HeaderJobID) != e.ID {
		t.Fatalf("record %s/%d@%d: kind %q, headers %v", r.Topic, r.Partition, r.Offset, e.Kind, r.Headers)
	}
	return e, args
}

func headerValue(r kafka.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

type asyncOutcome struct {
	info  jobs.JobInfo
	err   error
	calls int
}

// asyncOutcomes collects what EnqueueAsync's done funcs got, by name.
type asyncOutcomes struct {
	mu   sync.Mutex
	byID map[string]*asyncOutcome
	n    int
}

func newAsyncOutcomes() *asyncOutcomes { return &asyncOutcomes{byID: map[string]*asyncOutcome{}} }

func (o *asyncOutcomes) done(name string) func(jobs.JobInfo, error) {
	return func(info jobs.JobInfo, err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		out := o.byID[name]
		if out == nil {
			out = &asyncOutcome{}
			o.byID[name] = out
		}
		out.info, out.err = info, err
		out.calls++
		o.n++
	}
}

func (o *asyncOutcomes) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

func (o *asyncOutcomes) get(name string) asyncOutcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	if out := o.byID[name]; out != nil {
		return *out
	}
	return asyncOutcome{err: errors.New("done never ran")}
}

// wait waits for n dones, then checks that none ran twice.
func (o *asyncOutcomes) wait(t *testing.T, n int, d time.Duration) {
	t.Helper()
	kafkatest.WaitFor(t, d, fmt.Sprintf("%d dones", n), func() bool { return o.count() >= n })
	o.mu.Lock()
	defer o.mu.Unlock()
	for name, out := range o.byID {
		if out.calls != 1 {
			t.Errorf("done of %s ran %d times, want once", name, out.calls)
		}
	}
}
