package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// ownership records which member holds each partition, and every moment two
// held one at once.
type ownership struct {
	mu       sync.Mutex
	owner    map[int]string
	revoked  map[string][]int
	assigned map[string][]int
	doubles  []string
}

func newOwnership() *ownership {
	return &ownership{owner: map[int]string{}, revoked: map[string][]int{}, assigned: map[string][]int{}}
}

func (o *ownership) count(member string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, m := range o.owner {
		if m == member {
			n++
		}
	}
	return n
}

// recorder is one member's PartitionHandler.
type recorder struct {
	name string
	o    *ownership
}

func (r recorder) Assigned(_ *kafka.Session, claims []*kafka.Claim) {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	for _, c := range claims {
		if prev, ok := r.o.owner[c.Partition]; ok {
			r.o.doubles = append(r.o.doubles, r.name+" got a partition "+prev+" still held")
		}
		r.o.owner[c.Partition] = r.name
		r.o.assigned[r.name] = append(r.o.assigned[r.name], c.Partition)
	}
}

func (r recorder) Revoked(claims []*kafka.Claim, stopping, lost bool) {
	r.o.mu.Lock()
	defer r.o.mu.Unlock()
	for _, c := range claims {
		delete(r.o.owner, c.Partition)
		if !stopping {
			r.o.revoked[r.name] = append(r.o.revoked[r.name], c.Partition)
		}
	}
}

// A third member joins a cooperative group of two: each of the two gives up
// exactly the partition that moves and keeps running the others, the
// newcomer gets the two that moved, and no partition ever has two owners.
func TestCooperativeJoinMovesOnlyThePartitionsThatMove(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 6), env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic}, Rebalance: kafka.Cooperative,
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	o := newOwnership()
	run := func(name string) {
		c, err := kafka.NewConsumer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.RunCooperative(runCtx, recorder{name, o}) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("member %s: %v", name, err)
			}
		})
	}
	settle := func(want map[string]int) {
		t.Helper()
		defer func() {
			if t.Failed() {
				o.mu.Lock()
				defer o.mu.Unlock()
				t.Logf("ownership %v", o.owner)
			}
		}()
		kafkatest.WaitFor(t, 60*time.Second, fmt.Sprintf("ownership counts %v", want), func() bool {
			for m, n := range want {
				if o.count(m) != n {
					return false
				}
			}
			return true
		})
	}
	run("a")
	settle(map[string]int{"a": 6})
	run("b")
	settle(map[string]int{"a": 3, "b": 3})
	o.mu.Lock()
	revokedBefore := map[string]int{"a": len(o.revoked["a"]), "b": len(o.revoked["b"])}
	o.mu.Unlock()

	run("c")
	settle(map[string]int{"a": 2, "b": 2, "c": 2})
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range []string{"a", "b"} {
		if n := len(o.revoked[m]) - revokedBefore[m]; n != 1 {
			t.Errorf("member %s gave up %d partitions when c joined, want exactly the 1 that moved (revoked %v)", m, n, o.revoked[m])
		}
	}
	if len(o.doubles) > 0 {
		t.Errorf("partitions with two owners at once: %v", o.doubles)
	}
}
