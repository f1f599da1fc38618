package actors

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// hookLog keeps what one runtime's OnCommitted and OnReleased reported.
type hookLog struct {
	mu        sync.Mutex
	committed []kafka.Offset
	released  []TopicPartition
}

func (h *hookLog) onCommitted(o kafka.Offset) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.committed = append(h.committed, o)
}

func (h *hookLog) onReleased(topic string, partition int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = append(h.released, TopicPartition{topic, partition})
}

// TestEachRuntimeReportsOnlyItsOwnCommitsAndReleases: two runtimes in one
// process (two servers, or a server and a test's own) each report to their
// own hooks exactly the commits their generation accepted and the
// partitions they let go, never the other's. A chaos checker reading one
// server's commits must not be told about another's.
func TestEachRuntimeReportsOnlyItsOwnCommitsAndReleases(t *testing.T) {
	t.Parallel()
	type member struct {
		topic string
		log   *hookLog
		gen   *memGeneration
		rt    *Runtime
	}
	var members []*member
	for _, topic := range []string{"a", "b"} {
		m := &member{topic: topic, log: &hookLog{}, gen: newMemGeneration()}
		m.rt = newTestRuntime(t, Config{
			Handler:     func(context.Context, *kafka.Record, int) Outcome { return Done() },
			OnCommitted: m.log.onCommitted,
			OnReleased:  m.log.onReleased,
		})
		members = append(members, m)
	}
	const records = 50
	for _, m := range members {
		src := newMemSource(m.topic, 0, randomKeys(records, 5, 1))
		if err := m.rt.Assign(Assignment{Topic: m.topic, Partition: 0, Start: 0, Source: src, Generation: m.gen}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		kafkatest.WaitFor(t, 10*time.Second, m.topic+"'s commits to reach the end", func() bool { return m.gen.committed(0) == records })
		if err := m.rt.Revoke(TopicPartition{m.topic, 0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		m.log.mu.Lock()
		committed, released := slices.Clone(m.log.committed), slices.Clone(m.log.released)
		m.log.mu.Unlock()
		m.gen.mu.Lock()
		accepted := slices.Clone(m.gen.commits)
		m.gen.mu.Unlock()
		if !slices.Equal(committed, accepted) {
			t.Errorf("runtime of topic %q: OnCommitted reported %v, want exactly the commits its generation accepted, %v", m.topic, committed, accepted)
		}
		if want := []TopicPartition{{m.topic, 0}}; !slices.Equal(released, want) {
			t.Errorf("runtime of topic %q: OnReleased reported %v, want %v", m.topic, released, want)
		}
	}
}
