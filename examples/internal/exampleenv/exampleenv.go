// Package exampleenv is the little the examples share and that is not part of
// using ordo: which broker to talk to, and unique names.
package exampleenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"

	"github.com/ordo-go/ordo/kafka"
)

// Brokers returns the addresses in KAFKA_BROKERS, or starts an in-process
// broker; stop releases it.
func Brokers() (brokers []string, stop func(), err error) {
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		return strings.Split(v, ","), func() {}, nil
	}
	b, err := kafka.StartEmbeddedBroker()
	if err != nil {
		return nil, nil, err
	}
	return b.Addrs(), b.Close, nil
}

// Kafka returns brokers with the topics created (Brokers decides which);
// stop deletes the topics and releases the broker.
func Kafka(ctx context.Context, topics ...kafka.Topic) (brokers []string, stop func(), err error) {
	brokers, release, err := Brokers()
	if err != nil {
		return nil, nil, err
	}
	admin := kafka.NewAdmin(brokers)
	if err := admin.CreateTopics(ctx, topics...); err != nil {
		release()
		return nil, nil, err
	}
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	return brokers, func() {
		_ = admin.DeleteTopics(context.Background(), names...)
		release()
	}, nil
}

// Suffix returns a random suffix for topic and group names, so runs against
// a shared broker never see each other's data.
func Suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SyncBuffer is an io.Writer that several goroutines may write and a test
// may read while they do.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
