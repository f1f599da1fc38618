// Package kafkatest gives integration tests a Kafka broker: the real one named
// by KAFKA_BROKERS when it is set, else an embedded in-process broker. Every
// test gets its own uniquely named topics and group ids, so tests never see
// each other's data and may run in parallel.
package kafkatest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// Env is a broker a test can use.
type Env struct {
	// Brokers are the bootstrap addresses.
	Brokers []string
	// Admin talks to the broker.
	Admin *kafka.Admin
	// Embedded tells whether the broker runs inside the test process.
	Embedded bool
	// Name names the broker in messages and results: "embedded" or "kafka".
	Name string
}

// BrokersFromEnv returns the addresses in KAFKA_BROKERS (comma separated), or
// nil when it is unset.
func BrokersFromEnv() []string {
	v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS"))
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// New returns the broker for this test and registers its clean-up.
func New(t testing.TB) *Env {
	t.Helper()
	if brokers := BrokersFromEnv(); brokers != nil {
		return &Env{Brokers: brokers, Admin: kafka.NewAdmin(brokers), Name: "kafka"}
	}
	b, err := kafkaembed.Start()
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(b.Close)
	return &Env{Brokers: b.Addrs(), Admin: kafka.NewAdmin(b.Addrs()), Embedded: true, Name: "embedded"}
}

// Topic creates a topic with a name unique to this test and deletes it when
// the test ends.
func (e *Env) Topic(t testing.TB, partitions int) string {
	t.Helper()
	name := UniqueName(t, "topic")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// kafka.Admin asks again for a second while the cluster names no
	// controller; an embedded broker just started, in a process that runs
	// many tests at once, can take longer to (make test, once).
	err := e.Admin.CreateTopics(ctx, kafka.Topic{Name: name, Partitions: partitions})
	for err != nil && strings.Contains(err.Error(), "Broker Not Available") && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		err = e.Admin.CreateTopics(ctx, kafka.Topic{Name: name, Partitions: partitions})
	}
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	if !e.Embedded {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.Admin.DeleteTopics(ctx, name); err != nil {
				t.Logf("kafkatest: clean-up: %v", err)
			}
		})
	}
	return name
}

// Group returns a consumer group id unique to this test.
func (e *Env) Group(t testing.TB) string { return UniqueName(t, "group") }

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// UniqueName returns "<kind>-<test name>-<random>", safe as a topic name.
func UniqueName(t testing.TB, kind string) string {
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 150 {
		name = name[:150]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return kind + "-" + name + "-" + hex.EncodeToString(b[:])
}

// ReadAll reads every record of topic, up to its end offsets at the time
// of the call, through a consumer group of its own: what any consumer
// would see.
func (env *Env) ReadAll(t testing.TB, topic string) []kafka.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end, err := env.Admin.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers: env.Brokers, Group: env.Group(t), Topics: []string{topic},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	// A rebalance may end a generation mid-read; the next one reads the
	// partitions again, and records are kept by position, once.
	read := map[[2]int64]kafka.Record{}
	finished := map[int]bool{}
	var readErr error
	runCtx, stopRun := context.WithCancel(ctx)
	runErr := c.Run(runCtx, func(sess *kafka.Session) {
		for _, cl := range sess.Claims() {
			for next := int64(0); next < end[cl.Partition]; {
				rs, n, err := cl.Fetch(ctx, nil, 10_000)
				if errors.Is(err, kafka.ErrRevoked) {
					return
				}
				if err != nil {
					readErr = fmt.Errorf("read %s/%d: %w", topic, cl.Partition, err)
					stopRun()
					return
				}
				for _, r := range rs {
					read[[2]int64{int64(r.Partition), r.Offset}] = r
				}
				next = n
			}
			cl.Close()
			finished[cl.Partition] = true
		}
		if len(finished) == len(end) {
			stopRun()
		}
	})
	if err := errors.Join(runErr, readErr, ctx.Err()); err != nil {
		t.Fatal(err)
	}
	recs := slices.SortedFunc(maps.Values(read), func(a, b kafka.Record) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return recs
}

// Records sums topic's end offsets: how many records it ever got.
func (e *Env) Records(t testing.TB, topic string) int64 {
	t.Helper()
	end, err := e.Admin.EndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, o := range end {
		n += o
	}
	return n
}

// WaitFor polls cond until it holds, failing t with what it waited for once d
// has passed: a wait on a condition with a deadline, never a bare sleep.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log is where a test points a logger (slog.NewTextHandler(log, ...)) to
// read back what servers logged while they run.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len is how many bytes were logged so far.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// Matching returns the lines logged so far that contain every one of parts.
func (l *Log) Matching(parts ...string) []string {
	var out []string
	for line := range strings.Lines(l.String()) {
		line = strings.TrimSuffix(line, "\n")
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}
