package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// badInputArgs is the good job of the bad-input test; Pad makes a job large.
type badInputArgs struct {
	Key string `msgpack:"key"`
	Seq int    `msgpack:"seq"`
	Pad []byte `msgpack:"pad,omitempty"`
}

func (badInputArgs) Kind() string { return "bad_input_seq" }

// What ordo does with input that is odd but still a job (decided here, and
// asserted below):
//   - a repeated job id is a valid job: ids name jobs for logs and tracing,
//     ordo does not deduplicate by them, so both records run, in order;
//   - a record without a key (nil or empty) is a valid job: keyless records
//     of a partition share one virtual partition and run in partition order;
//   - a 900 KB job runs like any other (the broker's limit is about 1 MB);
//   - unknown, huge, binary and duplicate headers are carried along and
//     ignored; when ordo-kind appears twice the first one counts, and an
//     empty ordo-kind falls back to the envelope's kind.
//
// Bad input goes to the dead-letter topic with the reason in its error
// header: an empty value, bytes that are not an envelope (random, truncated
// msgpack), args that do not decode into the kind's type, a kind with no
// worker (also when only the header names it).
func TestBadInputIsDeadLetteredAndGoodJobsRunInOrder(t *testing.T) {
	t.Parallel()
	const partitions, keys, perKey = 4, 12, 25
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	dlqTopic := env.Topic(t, 1)
	rng := rand.New(rand.NewPCG(6, 6))

	log := newSeqLog()
	var keyless, big atomic.Int64
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[badInputArgs]) error {
		if len(j.Args.Pad) > 0 {
			big.Add(1)
		}
		if strings.HasPrefix(j.Args.Key, "keyless") {
			keyless.Add(1)
			return nil
		}
		log.run(seqArgs{Key: j.Args.Key, Seq: j.Args.Seq}, nil)
		return nil
	}))

	envelope := func(kind, id string, args any) []byte {
		raw, err := msgpack.Marshal(args)
		if err != nil {
			t.Fatal(err)
		}
		b, err := envelope.Encode(&envelope.Envelope{Version: envelope.Version, Kind: kind, ID: id,
			Args: raw, EnqueuedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	kindHeader := func(kind string) kafka.Header { return kafka.Header{Key: jobs.HeaderKind, Value: []byte(kind)} }

	var (
		msgs    []kafka.Message
		reasons []string // per message: "" for a good job, else what the error header must say
		want    = map[string]int{}
	)
	add := func(reason string, m kafka.Message) {
		m.Topic = topic
		msgs = append(msgs, m)
		reasons = append(reasons, reason)
	}
	good := func(key string, extra func(*kafka.Message, *badInputArgs)) {
		a := badInputArgs{Key: key, Seq: want[key]}
		want[key]++
		m := kafka.Message{Key: []byte(key), Headers: []kafka.Header{kindHeader(a.Kind())}}
		id := "job-" + key + "-" + strconv.Itoa(a.Seq)
		if extra != nil {
			extra(&m, &a)
		}
		if m.Value == nil {
			m.Value = envelope(a.Kind(), id, a)
		}
		add("", m)
	}
	truncated := envelope("bad_input_seq", "t", badInputArgs{Key: "x", Seq: 1})
	truncated = truncated[:len(truncated)/2]
	wrongTypes := envelope("bad_input_seq", "w", map[string]any{"key": []int{1, 2}, "seq": "seven"})
	argsNotAMap := func() []byte {
		b, err := msgpack.Marshal(map[string]any{"v": 1, "kind": "bad_input_seq", "id": "n", "args": []byte{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}()
	bad := []struct {
		reason string
		msg    func(key string) kafka.Message
	}{
		{"undecodable", func(k string) kafka.Message {
			return kafka.Message{Key: []byte(k), Value: randomBytes(1 + rng.IntN(200))}
		}},
		{"undecodable", func(k string) kafka.Message {
			return kafka.Message{Key: []byte(k), Value: truncated, Headers: []kafka.Header{kindHeader("bad_input_seq")}}
		}},
		{"do not decode", func(k string) kafka.Message { return kafka.Message{Key: []byte(k), Value: wrongTypes} }},
		{"do not decode", func(k string) kafka.Message { return kafka.Message{Key: []byte(k), Value: argsNotAMap} }},
		{`no worker for kind "no_such_kind"`, func(k string) kafka.Message {
			return kafka.Message{Key: []byte(k), Value: envelope("no_such_kind", "u", map[string]int{"a": 1})}
		}},
		{`no worker for kind "header_only_kind"`, func(k string) kafka.Message {
			// The header routes: a valid envelope under a kind header with no worker.
			return kafka.Message{Key: []byte(k), Value: envelope("bad_input_seq", "h", badInputArgs{Key: k}),
				Headers: []kafka.Header{kindHeader("header_only_kind")}}
		}},
		{"empty value", func(k string) kafka.Message { return kafka.Message{Key: []byte(k)} }},
		{"undecodable", func(k string) kafka.Message {
			return kafka.Message{Key: []byte(k), Value: randomBytes(64), Headers: []kafka.Header{
				{Key: "huge", Value: bytes.Repeat([]byte{0xff}, 64<<10)},
				{Key: "\x00\xffbinary", Value: randomBytes(32)},
				{Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")},
			}}
		}},
	}

	for seq := range perKey {
		for k := range keys {
			key := "key-" + strconv.Itoa(k)
			good(key, nil)
			if (seq*keys+k)%7 == 3 {
				b := bad[(seq*keys+k)%len(bad)]
				add(b.reason, b.msg(key))
			}
		}
	}
	// Every bad kind at least once, on a key of its own too.
	for i, b := range bad {
		add(b.reason, b.msg("bad-"+strconv.Itoa(i)))
	}
	// Odd but good.
	good("key-0", func(m *kafka.Message, a *badInputArgs) { // 900 KB of args
		a.Pad = randomBytes(900 << 10)
	})
	good("key-1", func(m *kafka.Message, a *badInputArgs) { // absurd headers, first kind wins
		m.Headers = append(m.Headers,
			kafka.Header{Key: "huge", Value: bytes.Repeat([]byte("h"), 100<<10)},
			kafka.Header{Key: "\x00\x01\xfe", Value: randomBytes(64)},
			kafka.Header{Key: "dup", Value: []byte("a")}, kafka.Header{Key: "dup", Value: []byte("b")},
			kindHeader("no_such_kind"))
	})
	good("key-2", func(m *kafka.Message, a *badInputArgs) { // empty kind header: the envelope's kind
		m.Headers = []kafka.Header{kindHeader("")}
	})
	for range 2 { // the same job id twice: both run
		good("key-3", func(m *kafka.Message, a *badInputArgs) {
			m.Value = envelope(a.Kind(), "job-repeated", *a)
		})
	}
	keylessJobs := 0
	for i := range 6 {
		m := kafka.Message{Value: envelope("bad_input_seq", "kl-"+strconv.Itoa(i), badInputArgs{Key: "keyless", Seq: i})}
		if i%2 == 1 {
			m.Key = []byte{}
		}
		add("", m)
		keylessJobs++
	}
	add("undecodable", kafka.Message{Value: randomBytes(10)}) // bad and keyless

	ctx := context.Background()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	deliveries, err := p.ProduceSync(ctx, msgs...)
	if err != nil {
		t.Fatal(err)
	}
	wantDead := map[[2]int64]string{}
	for i, d := range deliveries {
		if reasons[i] != "" {
			wantDead[[2]int64{int64(d.Partition), d.Offset}] = reasons[i]
		}
	}

	cfg := serverConfig(t, env, topic, ws)
	cfg.DeadLetterTopic = dlqTopic
	cfg.Concurrency = 16
	startJobServer(t, cfg)
	dead := dlqCollector(t, env, dlqTopic)

	goodJobs := len(msgs) - len(wantDead)
	kafkatest.WaitFor(t, time.Minute, fmt.Sprintf("%d good jobs and %d dead letters", goodJobs, len(wantDead)), func() bool {
		return log.runs.Load()+keyless.Load() >= int64(goodJobs) && len(dead()) >= len(wantDead)
	})
	waitCommittedToEnd(t, env, topic, cfg.Group)

	log.check(t, want)
	if n := keyless.Load(); n != int64(keylessJobs) {
		t.Errorf("%d keyless jobs ran, want %d", n, keylessJobs)
	}
	if n := big.Load(); n != 1 {
		t.Errorf("the 900 KB job ran %d times, want 1", n)
	}
	got := dead()
	if len(got) != len(wantDead) {
		t.Errorf("%d dead letters, want %d", len(got), len(wantDead))
	}
	for _, r := range got {
		part, _ := strconv.ParseInt(headerOf(r, jobs.HeaderSourcePartition), 10, 64)
		off, _ := strconv.ParseInt(headerOf(r, jobs.HeaderSourceOffset), 10, 64)
		reason, ok := wantDead[[2]int64{part, off}]
		if !ok {
			t.Errorf("dead letter from %d@%d (error %q) is a good job or a duplicate", part, off, headerOf(r, jobs.HeaderError))
			continue
		}
		delete(wantDead, [2]int64{part, off})
		if e := headerOf(r, jobs.HeaderError); !strings.Contains(e, reason) {
			t.Errorf("dead letter from %d@%d: error header %q does not say %q", part, off, e, reason)
		}
	}
	for at, reason := range wantDead {
		t.Errorf("bad record at %d@%d (%s) is not in the dead-letter topic", at[0], at[1], reason)
	}
}
