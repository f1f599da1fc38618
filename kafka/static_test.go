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
}

func startStatic(ctx context.Context, t *testing.T, cfg kafka.ConsumerConfig, instance string) *staticMember {
	t.Helper()
	cfg.InstanceID = instance
	c, err := kafka.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := &staticMember{instance: instance, done: make(chan error, 1)}
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		var gen int32 = -1
		total, same := 0, true
		for _, m := range members {
			s := m.last()
			if s == nil {
				same = false
				break
			}
			if gen == -1 {
				gen = s.GenerationID()
			}
			same = same && s.GenerationID() == gen
			total += len(s.Claims())
		}
		if same && total == n {
			return gen
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not settle on %d partitions in time", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	waitUntil(t, 30*time.Second, "the restarted member to get partitions", func() bool { return back.last() != nil })
	if got := partitionsOf(back.last()); !slices.Equal(got, before) || back.last().GenerationID() != gen {
		t.Errorf("the restarted member holds %v in generation %d; want its partitions %v back in generation %d",
			got, back.last().GenerationID(), before, gen)
	}
	// Give a rebalance, if one were coming, time to reach the others.
	time.Sleep(3 * cfg.HeartbeatInterval)
	for j, m := range members {
		if j == i {
			continue
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
