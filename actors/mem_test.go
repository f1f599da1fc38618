package actors

import (
	"context"
	"errors"
	"sync"
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
	// capAt, when above 0, is an offset no record handed out may reach:
	// beyond is set to the furthest end handed out past it.
	capAt  int64
	beyond int64
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
		if s.capAt > 0 && s.next > s.capAt && s.next > s.beyond {
			s.beyond = s.next
		}
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

// limit has the source note any record handed out at offset n or beyond
// until uncap; uncap returns the end of the furthest fetch past n, or 0.
func (s *memSource) limit(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capAt = n
}

func (s *memSource) uncap() (beyond int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capAt = 0
	return s.beyond
}

// handedOut is how many records Fetch has handed out.
func (s *memSource) handedOut() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}
