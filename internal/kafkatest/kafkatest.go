// Package kafkatest gives integration tests a Kafka broker: the real one named
// by KAFKA_BROKERS when it is set, else an embedded in-process broker. Every
// test gets its own uniquely named topics and group ids, so tests never see
// each other's data and may run in parallel.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/kafka"
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
	b, err := kafka.StartEmbeddedBroker()
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
	if err := e.Admin.CreateTopics(ctx, kafka.Topic{Name: name, Partitions: partitions}); err != nil {
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
