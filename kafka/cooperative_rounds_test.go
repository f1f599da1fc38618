package kafka_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// holder is a cooperative member's PartitionHandler that keeps its session
// and claims, and when each partition came and went.
type holder struct {
	mu       sync.Mutex
	sess     *kafka.Session
	held     map[int]*kafka.Claim
	assigned map[int]time.Time // when Assigned handed the partition over
	revoked  map[int]time.Time // when Revoked was asked to give it up
	drain    time.Duration     // how long a revocation takes
}

func newHolder() *holder {
	return &holder{held: map[int]*kafka.Claim{}, assigned: map[int]time.Time{}, revoked: map[int]time.Time{}}
}

func (h *holder) Assigned(sess *kafka.Session, claims []*kafka.Claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sess = sess
	for _, c := range claims {
		h.held[c.Partition] = c
		h.assigned[c.Partition] = time.Now()
	}
}

func (h *holder) Revoked(claims []*kafka.Claim, stopping, _ bool) {
	h.mu.Lock()
	for _, c := range claims {
		delete(h.held, c.Partition)
		if !stopping {
			h.revoked[c.Partition] = time.Now()
		}
	}
	h.mu.Unlock()
	if !stopping {
		time.Sleep(h.drain) // the work in flight on the partitions
	}
}

func (h *holder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// offsets are the partitions h holds, to commit at offset 0.
func (h *holder) offsets(topic string) (*kafka.Session, []kafka.Offset) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []kafka.Offset
	for p := range h.held {
		out = append(out, kafka.Offset{Topic: topic, Partition: p})
	}
	return h.sess, out
}

// startCooperative runs a cooperative member with handler h until the
// returned stop is called (or the test ends).
func startCooperative(t *testing.T, cfg kafka.ConsumerConfig, h kafka.PartitionHandler) (stop func()) {
	t.Helper()
	c, err := kafka.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.RunCooperative(ctx, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("member: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Members of a cooperative group commit their partitions all the time while
// others join and leave. Every commit goes with a generation the coordinator
// accepts: a member that rejoins holds its commits from the moment it sends
// JoinGroup until it knows the new generation, which the coordinator
// demands from the moment the join completes (a commit with the old one is
// refused with ILLEGAL_GENERATION, and one with the new one before SyncGroup
// with REBALANCE_IN_PROGRESS).
func TestCooperativeCommitsOfKeptPartitionsAreNeverRefused(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 4), env.Group(t)
	cfg := kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic}, Rebalance: kafka.Cooperative,
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}

	var mu sync.Mutex
	var refused []error
	commits := 0
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	commitAll := func(h *holder) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				sess, offsets := h.offsets(topic)
				if sess == nil || len(offsets) == 0 {
					continue
				}
				commitCtx, cancelCommit := context.WithTimeout(ctx, 10*time.Second)
				err := sess.Commit(commitCtx, offsets...)
				cancelCommit()
				mu.Lock()
				commits++
				if errors.Is(err, kafkago.IllegalGeneration) || errors.Is(err, kafkago.RebalanceInProgress) {
					refused = append(refused, err)
				}
				mu.Unlock()
			}
		}()
	}

	a := newHolder()
	startCooperative(t, cfg, a)
	commitAll(a)
	kafkatest.WaitFor(t, time.Minute, "a to hold the four partitions", func() bool { return a.count() == 4 })
	for round := range 3 {
		b := newHolder()
		stopB := startCooperative(t, cfg, b)
		commitAll(b)
		kafkatest.WaitFor(t, time.Minute, "a and b to share the partitions", func() bool { return a.count() == 2 && b.count() == 2 })
		stopB()
		kafkatest.WaitFor(t, time.Minute, "a to hold the four partitions again", func() bool { return a.count() == 4 })
		t.Logf("round %d done", round)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d commits, %d refused (broker=%s)", commits, len(refused), env.Name)
	for i, err := range refused {
		if i == 5 {
			t.Errorf("... and %d more", len(refused)-5)
			break
		}
		t.Errorf("commit refused: %v", err)
	}
}

// When a member joins a cooperative group, the partition it takes is free
// from the moment its old owner finished draining it (its Revoked
// returned), and the newcomer gets it at once: the old owner rejoins as soon
// as it has drained, and every member told a second round follows watches
// for it closely rather than at its next heartbeat (1 s by default).
func TestCooperativeMovedPartitionReachesItsNewOwnerRightAfterItsRelease(t *testing.T) {
	t.Parallel()
	const drain, slack = 300 * time.Millisecond, 200 * time.Millisecond
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 2), env.Group(t)
	cfg := kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic}, Rebalance: kafka.Cooperative,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	a, b := newHolder(), newHolder()
	a.drain = drain
	startCooperative(t, cfg, a)
	kafkatest.WaitFor(t, time.Minute, "a to hold both partitions", func() bool { return a.count() == 2 })
	startCooperative(t, cfg, b)
	kafkatest.WaitFor(t, time.Minute, "a and b to hold one partition each", func() bool { return a.count() == 1 && b.count() == 1 })

	a.mu.Lock()
	defer a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.assigned) != 1 || len(a.revoked) != 1 {
		t.Fatalf("a revoked %v, b was assigned %v; want the one partition that moved in each", a.revoked, b.assigned)
	}
	for p, got := range b.assigned {
		released, ok := a.revoked[p]
		if !ok {
			t.Fatalf("b got partition %d, which a did not give up (a revoked %v)", p, a.revoked)
		}
		gap := got.Sub(released)
		t.Logf("partition %d: revoked by a, drained in %v, assigned to b %v later (idle %v after the drain; broker=%s)",
			p, drain, gap.Round(time.Millisecond), (gap - drain).Round(time.Millisecond), env.Name)
		if gap > drain+slack {
			t.Errorf("partition %d reached its new owner %v after its old owner began a %v drain; want at most the drain plus %v",
				p, gap.Round(time.Millisecond), drain, slack)
		}
	}
}
