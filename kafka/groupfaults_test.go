package kafka_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// faultCluster is an in-process cluster whose responses a test can replace:
// the faults of group membership that a real broker cannot be made to
// produce on demand.
func faultCluster(t *testing.T, brokers int) (*kfake.Cluster, []string, string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const topic = "faults"
	if err := kafka.NewAdmin(c.ListenAddrs()).CreateTopics(ctx, kafka.Topic{Name: topic, Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	return c, c.ListenAddrs(), topic
}

// runFaultMember runs a member of group on a fault cluster, heartbeating
// every 100 ms, and returns its sessions as runMember does.
func runFaultMember(ctx context.Context, t *testing.T, brokers []string, topic, group string, session time.Duration) <-chan *kafka.Session {
	return runMember(ctx, t, kafka.ConsumerConfig{Brokers: brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: session, Logger: slog.New(slog.DiscardHandler)})
}

// groupWatch sees every heartbeat and join a fault cluster receives from one
// group, and can answer the next heartbeat with an error. A member that
// keeps its generation is shown by its later heartbeats of that generation
// and by joins that never come, rather than by a wait in which nothing
// happened.
type groupWatch struct {
	mu      sync.Mutex
	fail    int16 // the error code for the next heartbeat; 0: none
	beats   []watchedBeat
	joins   int
	faulted int // heartbeats before the failed one, -1 until it was answered
}

type watchedBeat struct {
	generation int32
	node       int32
}

func watchGroup(c *kfake.Cluster, group string) *groupWatch {
	w := &groupWatch{faulted: -1}
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		hb := req.(*kmsg.HeartbeatRequest)
		if hb.Group != group {
			return nil, nil, false
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.beats = append(w.beats, watchedBeat{hb.Generation, c.CurrentNode()})
		if w.fail == 0 {
			return nil, nil, false
		}
		c.KeepControl()
		w.faulted = len(w.beats)
		resp := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode, w.fail = w.fail, 0
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if req.(*kmsg.JoinGroupRequest).Group == group {
			w.mu.Lock()
			w.joins++
			w.mu.Unlock()
		}
		return nil, nil, false
	})
	return w
}

// failNext makes the group's next heartbeat fail with code.
func (w *groupWatch) failNext(code int16) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = code
}

// beatsAfterFault counts the heartbeats of generation sent after the failed
// one, to node (any node when node is -1).
func (w *groupWatch) beatsAfterFault(generation, node int32) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.faulted < 0 {
		return 0
	}
	n := 0
	for _, b := range w.beats[w.faulted:] {
		if b.generation == generation && (node < 0 || b.node == node) {
			n++
		}
	}
	return n
}

// beatsSince counts the heartbeats of generation after the first since, to
// node.
func (w *groupWatch) beatsSince(since int, generation, node int32) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, b := range w.beats[min(since, len(w.beats)):] {
		if b.generation == generation && b.node == node {
			n++
		}
	}
	return n
}

func (w *groupWatch) counts() (beats, joins int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.beats), w.joins
}

// Each answer a coordinator can give a heartbeat is handled as Kafka means
// it: REBALANCE_IN_PROGRESS rejoins with the same member id;
// UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION end the generation (its commits
// are refused from then on) and join afresh; NOT_COORDINATOR finds the
// coordinator again and keeps the generation.
func TestHeartbeatErrorsAreEachHandled(t *testing.T) {
	for _, c := range []struct {
		name          string
		code          int16
		newGeneration bool
		sameMemberID  bool
	}{
		{"REBALANCE_IN_PROGRESS", 27, true, true},
		{"UNKNOWN_MEMBER_ID", 25, true, false},
		{"ILLEGAL_GENERATION", 22, true, true},
		{"NOT_COORDINATOR", 16, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cluster, brokers, topic := faultCluster(t, 1)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			group := "g-" + c.name
			watch := watchGroup(cluster, group)
			sessions := runFaultMember(ctx, t, brokers, topic, group, 5*time.Second)
			first := <-sessions
			_, joined := watch.counts()
			watch.failNext(c.code)
			if !c.newGeneration {
				// Three more heartbeats of the same generation show the
				// member went on with it after the error, and no join
				// was sent meanwhile.
				kafkatest.WaitFor(t, 15*time.Second, "heartbeats of the kept generation after "+c.name, func() bool {
					return watch.beatsAfterFault(first.GenerationID(), -1) >= 3
				})
				if _, joins := watch.counts(); joins != joined {
					t.Fatalf("the member joined again after %s; it should have kept generation %d", c.name, first.GenerationID())
				}
				select {
				case next := <-sessions:
					t.Fatalf("a new generation %d after %s; the member should have kept generation %d", next.GenerationID(), c.name, first.GenerationID())
				default:
				}
				if err := first.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 1}); err != nil {
					t.Errorf("the generation kept after %s cannot commit: %v", c.name, err)
				}
				return
			}
			// The broker did not really drop the member: after
			// UNKNOWN_MEMBER_ID the new member's join waits until the
			// old one's session (5 s) expires.
			select {
			case next := <-sessions:
				if same := next.MemberID() == first.MemberID(); same != c.sameMemberID {
					t.Errorf("member id %s → %s after %s; want same=%v", first.MemberID(), next.MemberID(), c.name, c.sameMemberID)
				}
				err := first.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 1})
				if !errors.Is(err, kafka.ErrStaleGeneration) {
					t.Errorf("a commit of the ended generation returned %v, want ErrStaleGeneration", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("no new generation after %s", c.name)
			}
		})
	}
}

// The group coordinator moves to another broker: the member finds it again,
// keeps its generation and its partitions, and its commits go through.
func TestCoordinatorMoveKeepsTheGeneration(t *testing.T) {
	t.Parallel()
	cluster, brokers, topic := faultCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const group = "moving"
	watch := watchGroup(cluster, group)
	sessions := runFaultMember(ctx, t, brokers, topic, group, 5*time.Second)
	first := <-sessions
	_, joined := watch.counts()
	before := cluster.CoordinatorFor(group)
	for i := 0; cluster.CoordinatorFor(group) == before; i++ {
		if i == 100 {
			t.Fatal("the coordinator never moved")
		}
		cluster.RehashCoordinators()
	}
	// Three heartbeats of the first generation answered by the new
	// coordinator show that the member found it and kept its generation,
	// with no join meanwhile.
	moved := cluster.CoordinatorFor(group)
	after, _ := watch.counts()
	kafkatest.WaitFor(t, 15*time.Second, "heartbeats of the first generation at the new coordinator", func() bool {
		return watch.beatsSince(after, first.GenerationID(), moved) >= 3
	})
	if _, joins := watch.counts(); joins != joined {
		t.Fatalf("the member joined again after the coordinator moved; it should have kept generation %d", first.GenerationID())
	}
	select {
	case next := <-sessions:
		t.Fatalf("the coordinator's move started generation %d; the member should have kept %d", next.GenerationID(), first.GenerationID())
	default:
	}
	if err := first.Commit(ctx, kafka.Offset{Topic: topic, Partition: 1, Offset: 3}); err != nil {
		t.Fatalf("commit after the coordinator moved from node %d to %d: %v", before, cluster.CoordinatorFor(group), err)
	}
}

// A coordinator that stops answering (its broker died and is not yet fenced,
// so it is still named the coordinator) ends the member's generation within a
// few heartbeat intervals, not a session timeout per unanswered heartbeat:
// until then the member runs jobs whose commits all fail.
func TestUnansweredHeartbeatsEndTheGenerationPromptly(t *testing.T) {
	t.Parallel()
	cluster, brokers, topic := faultCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const group = "unanswered"
	sessions := runFaultMember(ctx, t, brokers, topic, group, 20*time.Second)
	first := <-sessions
	silent := make(chan struct{})
	defer close(silent)
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if req.(*kmsg.HeartbeatRequest).Group != group {
			return nil, nil, false
		}
		cluster.KeepControl()
		cluster.SleepControl(func() { <-silent })
		return nil, errors.New("the coordinator is gone"), true
	})
	began := time.Now()
	select {
	case <-first.Done():
		t.Logf("the generation ended %v after the coordinator fell silent", time.Since(began).Round(time.Millisecond))
	case <-time.After(6 * time.Second):
		t.Fatalf("the generation still ran %v after its coordinator stopped answering heartbeats (session timeout 20s)", time.Since(began).Round(time.Millisecond))
	}
}

// idRecorder is a recorder that also keeps its member id.
type idRecorder struct {
	recorder
	mu   sync.Mutex
	id   string
	lost []int
}

func (r *idRecorder) Assigned(s *kafka.Session, claims []*kafka.Claim) {
	r.mu.Lock()
	r.id = s.MemberID()
	r.mu.Unlock()
	r.recorder.Assigned(s, claims)
}

func (r *idRecorder) Revoked(claims []*kafka.Claim, stopping, lost bool) {
	if lost {
		r.mu.Lock()
		for _, c := range claims {
			r.lost = append(r.lost, c.Partition)
		}
		r.mu.Unlock()
	}
	r.recorder.Revoked(claims, stopping, lost)
}

func (r *idRecorder) memberID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.id
}

// A cooperative member keeps its partitions while it rejoins. If it cannot
// reach the coordinator then (a broker restart, a partition of the network),
// the coordinator expels it a session timeout after it last heard from it
// and gives its partitions to another member, which starts them at once. The
// member, whose joins keep failing, never hears of it: it must give its
// partitions up on its own before the session could run out, or one key's
// jobs run on two members at once (CI's cooperative chaos printed
// overlaps=451, then 181, on a broker restart).
func TestACooperativeMemberCutOffWhileRejoiningGivesUpItsPartitionsBeforeTheyMove(t *testing.T) {
	t.Parallel()
	// Its joins fail at once (connection refused), or are never answered
	// (a coordinator that died without closing its connections).
	t.Run("joins fail", func(t *testing.T) { t.Parallel(); testCutOffWhileRejoining(t, false) })
	t.Run("joins hang", func(t *testing.T) { t.Parallel(); testCutOffWhileRejoining(t, true) })
}

func testCutOffWhileRejoining(t *testing.T, hang bool) {
	cluster, brokers, topic := faultCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const group = "cut-off"
	o := newOwnership()
	cfg := kafka.ConsumerConfig{Brokers: brokers, Group: group, Topics: []string{topic}, Rebalance: kafka.Cooperative,
		HeartbeatInterval: 300 * time.Millisecond, SessionTimeout: 3 * time.Second, RebalanceTimeout: 3 * time.Second,
		PartitionWatchInterval: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	members := map[string]*idRecorder{}
	for _, name := range []string{"a", "b"} {
		r := &idRecorder{recorder: recorder{name, o}}
		members[name] = r
		c, err := kafka.NewConsumer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- c.RunCooperative(runCtx, r) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("member %s: %v", name, err)
			}
		})
	}
	kafkatest.WaitFor(t, 30*time.Second, "one partition each", func() bool { return o.count("a") == 1 && o.count("b") == 1 })

	// A partition is added: both members rejoin. From its join on, a
	// reaches the coordinator no more: its joins fail (or hang), and so do
	// its heartbeats. The coordinator expels it a session timeout after
	// the last heartbeat it answered, and gives b every partition.
	a := members["a"].memberID()
	silent := make(chan struct{})
	defer close(silent)
	cutOff := func(memberID string) bool { return memberID == a }
	var joining atomic.Bool // a has sent its first join since the partition was added
	cluster.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		jg := req.(*kmsg.JoinGroupRequest)
		if jg.Group != group || !cutOff(jg.MemberID) {
			return nil, nil, false
		}
		cluster.KeepControl()
		joining.Store(true)
		if hang {
			cluster.SleepControl(func() { <-silent })
		}
		return nil, errors.New("unreachable"), true
	})
	cluster.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		hb := req.(*kmsg.HeartbeatRequest)
		if hb.Group != group || !cutOff(hb.MemberID) || !joining.Load() {
			return nil, nil, false
		}
		cluster.KeepControl()
		return nil, errors.New("unreachable"), true
	})
	if err := kafka.NewAdmin(brokers).AddPartitions(ctx, topic, 3); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 30*time.Second, "b holding every partition", func() bool { return o.count("b") == 3 })

	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.doubles) > 0 {
		t.Errorf("partitions with two owners at once: %v", o.doubles)
	}
	if lost := members["a"].lost; len(lost) != 1 {
		t.Errorf("a gave up %v as lost, want its one partition", lost)
	}
}
