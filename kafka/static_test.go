package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// staticMember runs one consumer of a static group and records every
// session it was handed.
type staticMember struct {
	instance string
	cancel   context.CancelFunc
	done     chan error
	mu       sync.Mutex
	sessions []*kafka.Session
	beats    []error // each heartbeat's outcome, in order
}

func startStatic(ctx context.Context, t *testing.T, cfg kafka.ConsumerConfig, instance string) *staticMember {
	t.Helper()
	cfg.InstanceID = instance
	c, err := kafka.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &staticMember{instance: instance, done: make(chan error, 1)}
	kafka.SetHeartbeatHook(c, func(err error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.beats = append(m.beats, err)
	})
	runCtx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	go func() {
		m.done <- c.Run(runCtx, func(s *kafka.Session) {
			m.mu.Lock()
			m.sessions = append(m.sessions, s)
			m.mu.Unlock()
			<-s.Done()
		})
	}()
	t.Cleanup(func() { cancel(); <-m.done })
	return m
}

func (m *staticMember) last() *kafka.Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sessions) == 0 {
		return nil
	}
	return m.sessions[len(m.sessions)-1]
}

// heartbeats returns the outcomes of the member's heartbeats from the
// from-th on.
func (m *staticMember) heartbeats(from int) []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.beats[min(from, len(m.beats)):])
}

func (m *staticMember) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

func partitionsOf(s *kafka.Session) []int {
	var ps []int
	for _, c := range s.Claims() {
		ps = append(ps, c.Partition)
	}
	slices.Sort(ps)
	return ps
}

// waitStable waits until every member holds a session of one generation
// whose partitions add up to n.
func waitStable(t *testing.T, members []*staticMember, n int) int32 {
	t.Helper()
	var gen int32
	kafkatest.WaitFor(t, 60*time.Second, fmt.Sprintf("the group to settle on %d partitions", n), func() bool {
		gen = -1
		total := 0
		for _, m := range members {
			s := m.last()
			if s == nil {
				return false
			}
			if gen == -1 {
				gen = s.GenerationID()
			}
			if s.GenerationID() != gen {
				return false
			}
			total += len(s.Claims())
		}
		return total == n
	})
	return gen
}

// A static member that stops and comes back within the session timeout gets
// its partitions back, and the other members never see a rebalance: no new
// session, no revocation.
func TestStaticMemberRestartsWithoutRebalancingTheOthers(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 6), env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	members := []*staticMember{startStatic(ctx, t, cfg, "a")}
	waitStable(t, members, 6)
	members = append(members, startStatic(ctx, t, cfg, "b"))
	waitStable(t, members, 6)
	members = append(members, startStatic(ctx, t, cfg, "c"))
	gen := waitStable(t, members, 6)

	// Restart a member that is not the leader: a static leader that comes
	// back rebalances the group on the join versions kafka-go speaks (v7;
	// KIP-814's skip-assignment needs v9).
	i := slices.IndexFunc(members, func(m *staticMember) bool { return !m.last().Leader() })
	restarted := members[i]
	before := partitionsOf(restarted.last())
	sessionsBefore := map[string]int{}
	for _, m := range members {
		sessionsBefore[m.instance] = m.count()
	}
	restarted.cancel()
	if err := <-restarted.done; err != nil {
		t.Fatalf("stopping a static member: %v", err)
	}
	restarted.done <- nil // for the cleanup
	back := startStatic(ctx, t, cfg, restarted.instance)
	kafkatest.WaitFor(t, 30*time.Second, "the restarted member to get partitions", func() bool { return back.last() != nil })
	if got := partitionsOf(back.last()); !slices.Equal(got, before) || back.last().GenerationID() != gen {
		t.Errorf("the restarted member holds %v in generation %d; want its partitions %v back in generation %d",
			got, back.last().GenerationID(), before, gen)
	}
	// A rebalance reaches a member as the answer to its next heartbeat: once
	// each of the others has had three heartbeats answered since the
	// restarted member got its partitions back, one would have reached them.
	beatsBefore := map[string]int{}
	for _, m := range members {
		beatsBefore[m.instance] = len(m.heartbeats(0))
	}
	for j, m := range members {
		if j == i {
			continue
		}
		kafkatest.WaitFor(t, 30*time.Second, "three heartbeats of member "+m.instance, func() bool {
			return len(m.heartbeats(beatsBefore[m.instance])) >= 3
		})
		for _, err := range m.heartbeats(beatsBefore[m.instance]) {
			if err != nil {
				t.Errorf("member %s heard %v from the coordinator while %s restarted; want its heartbeats answered", m.instance, err, restarted.instance)
			}
		}
		if n := m.count(); n != sessionsBefore[m.instance] {
			t.Errorf("member %s was handed %d new sessions while %s restarted; want none", m.instance, n-sessionsBefore[m.instance], restarted.instance)
		}
		select {
		case <-m.last().Done():
			t.Errorf("member %s had its partitions revoked while %s restarted", m.instance, restarted.instance)
		default:
		}
	}
}

// Two live processes with one InstanceID: Kafka hands the instance to the
// one that joined last, and the other is fenced: Run returns
// ErrMembershipFailed naming FENCED_INSTANCE_ID, and its commits are refused,
// so it cannot move the offsets of partitions it no longer owns.
func TestSecondMemberWithALiveInstanceIDFencesTheFirst(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 2), env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	first := startStatic(ctx, t, cfg, "pod-0")
	waitStable(t, []*staticMember{first}, 2)
	old := first.last()
	if err := old.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 1}); err != nil {
		t.Fatal(err)
	}

	second := startStatic(ctx, t, cfg, "pod-0")
	var err error
	select {
	case err = <-first.done:
		first.done <- err
	case <-time.After(30 * time.Second):
		t.Fatal("the first member was not fenced")
	}
	if !errors.Is(err, kafka.ErrMembershipFailed) || !errors.Is(err, kafkago.FencedInstanceID) {
		t.Fatalf("the fenced member's Run returned %v; want ErrMembershipFailed caused by FENCED_INSTANCE_ID", err)
	}
	if err := old.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 5}); !errors.Is(err, kafka.ErrStaleGeneration) {
		t.Fatalf("a commit of the fenced member returned %v, want ErrStaleGeneration", err)
	}
	assertCommitted(ctx, t, env, group, topic, 0, 1)
	waitStable(t, []*staticMember{second}, 2)
	if got := fmt.Sprint(partitionsOf(second.last())); got != "[0 1]" {
		t.Errorf("the member that took the instance holds %s, want [0 1]", got)
	}
}
