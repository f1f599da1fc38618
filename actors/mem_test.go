package actors

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// memSource is an in-memory partition: records with offsets 0..n-1.
type memSource struct {
	mu      sync.Mutex
	records []kafka.Record
	next    int64
	fetches int
	done    <-chan struct{}
}

func newMemSource(topic string, partition int, keys []string) *memSource {
	s := &memSource{}
	for i, k := range keys {
		s.records = append(s.records, kafka.Record{Topic: topic, Partition: partition, Offset: int64(i), Key: []byte(k)})
	}
	return s
}

// add appends records with the given keys.
func (s *memSource) add(topic string, partition int, keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.records = append(s.records, kafka.Record{Topic: topic, Partition: partition, Offset: int64(len(s.records)), Key: []byte(k)})
	}
}

func (s *memSource) Fetch(ctx context.Context, dst []kafka.Record, max int) ([]kafka.Record, int64, error) {
	s.mu.Lock()
	s.fetches++
	if s.done != nil {
		select {
		case <-s.done:
			s.mu.Unlock()
			return dst, s.next, errors.New("revoked")
		default:
		}
	}
	if int(s.next) < len(s.records) {
		end := min(len(s.records), int(s.next)+max, int(s.next)+500)
		dst = append(dst, s.records[s.next:end]...)
		s.next = int64(end)
		s.mu.Unlock()
		return dst, int64(end), nil
	}
	s.mu.Unlock()
	select { // no more records: behave like a long poll
	case <-time.After(5 * time.Millisecond):
	case <-ctx.Done():
	}
	return dst, s.next, nil
}

// memGeneration records every commit.
type memGeneration struct {
	mu      sync.Mutex
	commits []kafka.Offset
	latest  map[int]int64
}

func newMemGeneration() *memGeneration {
	return &memGeneration{latest: map[int]int64{}}
}

func (g *memGeneration) GenerationID() int32 { return 1 }

func (g *memGeneration) Commit(_ context.Context, offsets ...kafka.Offset) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, o := range offsets {
		if prev, ok := g.latest[o.Partition]; ok && o.Offset < prev {
			return errors.New("commit moved backwards")
		}
		g.latest[o.Partition] = o.Offset
		g.commits = append(g.commits, o)
	}
	return nil
}

func (g *memGeneration) lastCommit(partition int) kafka.Offset {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := len(g.commits) - 1; i >= 0; i-- {
		if g.commits[i].Partition == partition {
			return g.commits[i]
		}
	}
	return kafka.Offset{Offset: -1}
}

func (g *memGeneration) commitsOf(partition int) []kafka.Offset {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []kafka.Offset
	for _, c := range g.commits {
		if c.Partition == partition {
			out = append(out, c)
		}
	}
	return out
}

func (g *memGeneration) committed(partition int) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if o, ok := g.latest[partition]; ok {
		return o
	}
	return -1
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
