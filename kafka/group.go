package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/heartbeat"
	"github.com/segmentio/kafka-go/protocol/joingroup"
	"github.com/segmentio/kafka-go/protocol/leavegroup"
	"github.com/segmentio/kafka-go/protocol/syncgroup"

	"github.com/ordo-go/ordo/internal/backoff"
)

// ordo's own group membership, on the classic group protocol's calls
// (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup) sent through
// kafka-go's transport. kafka-go's ConsumerGroup has no static membership
// (kafka-go #493); this member sends the group instance id on every call.

// protocolRange names the range assignor, as Java's RangeAssignor does, so a
// group can mix ordo members with other clients that speak it.
const protocolRange = "range"

// groupMemberState is one Run: who this member is in the group and where
// the coordinator is. Only Run's goroutine touches it.
type groupMemberState struct {
	c        *Consumer
	fn       func(sess *Session)
	rt       kafkago.RoundTripper
	coord    net.Addr
	memberID string
	stopping atomic.Bool
	// generations counts the generations received.
	generations int
	// partitions are the topics' partition counts as of the last join;
	// a change rebalances the group.
	partitions map[string]int
	// confirmed is when the last request the coordinator answered as
	// coming from a member of the group was sent (Unix nanoseconds): the
	// member's session at the coordinator runs from no earlier (see
	// leaseEnd).
	confirmed atomic.Int64
	// holding, for a cooperative member, tells whether it runs
	// partitions: it keeps them between generations, and through failed
	// joins. Nil for an eager member, which runs none between generations.
	holding func() bool
}

// leaseMargin is how long before the coordinator could expel a member that
// it no longer hears from the member gives its partitions up: a heartbeat
// interval, at most a third of the session.
func leaseMargin(cfg ConsumerConfig) time.Duration {
	return min(cfg.HeartbeatInterval, cfg.SessionTimeout/3)
}

// leaseEnd is when the member's right to run its partitions ends unless the
// coordinator answers it as a member again. The coordinator expels a member
// a session timeout after the last request it received from it; it may then
// give the member's partitions to another, which starts their jobs at once.
// A member that cannot reach the coordinator (a broker restart, a network
// partition, joins that keep failing) cannot learn that it was expelled, so
// it must stop on its own: leaseMargin before the session could have run out,
// counted from when it sent the last request the coordinator answered.
func (m *groupMemberState) leaseEnd() time.Time {
	cfg := m.c.cfg
	return time.Unix(0, m.confirmed.Load()).Add(cfg.SessionTimeout - leaseMargin(cfg))
}

// leaseTimer fires when the member's lease may have ended; leaseOver tells
// whether it has.
func (m *groupMemberState) leaseTimer() *time.Timer { return time.NewTimer(time.Until(m.leaseEnd())) }

// leaseOver tells whether the lease has ended, and when it has not, sets t
// to fire when it may: an answer since t was set moved the end.
func (m *groupMemberState) leaseOver(t *time.Timer) bool {
	end := m.leaseEnd()
	if time.Now().Before(end) {
		t.Reset(time.Until(end))
		return false
	}
	return true
}

// confirm records that the coordinator answered a request sent at sent as
// coming from a member of the group.
func (m *groupMemberState) confirm(sent time.Time) {
	for {
		old := m.confirmed.Load()
		if sent.UnixNano() <= old || m.confirmed.CompareAndSwap(old, sent.UnixNano()) {
			return
		}
	}
}

// errLeaseExpired ends a generation whose member went a session timeout,
// less leaseMargin, without an answer from the coordinator as a member: its
// partitions may be given to another member any moment now.
var errLeaseExpired = fmt.Errorf("%w: no answer as a member of the group for a session timeout", errUnreachable)

// generation is what a successful JoinGroup and SyncGroup hand a member.
type generation struct {
	id       int32
	memberID string
	leader   bool
	assigned map[string][]int32
	// secondRound says the leader told this cooperative round's members
	// that another round follows (secondRoundUserData).
	secondRound bool
}

// errRejoin ends a generation that must be joined again: a rebalance, or
// partitions added to a topic.
var errRejoin = errors.New("kafka: rejoin the group")

// fatalJoin tells the errors that no retry can cure.
func fatalJoin(err error) bool {
	for _, e := range []error{kafkago.InvalidTopic, kafkago.TopicAuthorizationFailed, kafkago.GroupAuthorizationFailed,
		kafkago.InconsistentGroupProtocol, kafkago.InvalidGroupId, kafkago.UnsupportedVersion,
		kafkago.FencedInstanceID, kafkago.SASLAuthenticationFailed, kafkago.InvalidSessionTimeout,
		kafkago.GroupMaxSizeReached} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Run joins the group and calls fn once for each generation. fn runs while
// the generation lasts; it must return soon after sess.Done() is closed, and
// returning gives the partitions back. Run returns nil when ctx ends, after
// the last fn returned and, unless the member is static
// (ConsumerConfig.InstanceID) and Leave was not called, after it left the
// group. It returns an error wrapping ErrMembershipFailed when the broker
// refuses the member for good (an inconsistent group protocol, another
// process with the same InstanceID, an authorization failure). A join that
// fails otherwise is tried again after a growing pause, which the log gives
// as retry_in.
func (c *Consumer) Run(ctx context.Context, fn func(sess *Session)) error {
	// The membership calls get connections of their own: a broker serves
	// one request per connection at a time, so a JoinGroup that waits for
	// the others must not hold up this member's commits, nor, through a
	// shared transport, another member's heartbeats.
	tr := c.cfg.Security.transport()
	defer tr.CloseIdleConnections()
	m := &groupMemberState{c: c, fn: fn, rt: tr}
	defer m.leave()
	return m.runGenerations(ctx, func(ctx context.Context) (bool, error) {
		gen, err := m.join(ctx)
		if err != nil {
			return false, err
		}
		return true, m.run(ctx, gen)
	}, func(bool) {}) // run hands everything back as its generation ends
}

// runGenerations runs generations one after another (generation joins and
// lasts until it ends, saying whether it joined) and decides what follows
// one that ends in an error: a rejoin, a fresh join, a pause, or the end.
// lost is told when the member lost its place, for good or not. It returns
// as Run does.
func (m *groupMemberState) runGenerations(ctx context.Context, generation func(context.Context) (joined bool, err error), lost func(forGood bool)) error {
	cfg := m.c.cfg
	for failures := 0; ; {
		if ctx.Err() != nil {
			return nil
		}
		joined, err := generation(ctx)
		if joined {
			failures = 0
		}
		switch {
		case ctx.Err() != nil, err == nil: // err is nil only when ctx ended
			return nil
		case errors.Is(err, errRejoin), errors.Is(err, kafkago.RebalanceInProgress):
			continue
		case fatalJoin(err):
			lost(true)
			cfg.Logger.Error("ordo: the group refused this member; stopping", "group", cfg.Group, "err", err)
			return fmt.Errorf("%w: group %q: %w", ErrMembershipFailed, cfg.Group, err)
		case errors.Is(err, kafkago.UnknownMemberId), errors.Is(err, kafkago.IllegalGeneration):
			// The generation is over, and whatever the member held,
			// another may be given. An unknown member joins again as a
			// new one (a static one keeps its instance id); with an
			// illegal generation the member id still stands, as in
			// Java's coordinator. No pause: the coordinator asks for a
			// fresh join.
			lost(false)
			if errors.Is(err, kafkago.UnknownMemberId) && cfg.InstanceID == "" {
				m.memberID = ""
			}
			continue
		}
		m.coord = nil // the coordinator may have moved
		failures++
		wait := backoff.Delay(100*time.Millisecond, 5*time.Second, failures)
		cfg.Logger.Warn("ordo: joining consumer group failed; retrying", "group", cfg.Group, "err", err, "retry_in", wait)
		if m.holding != nil && m.holding() && !time.Now().Add(wait).Before(m.leaseEnd()) {
			// The coordinator may expel this member before the next
			// try: give the partitions up now, uncommitted, rather than
			// run them beside their next owner.
			cfg.Logger.Warn("ordo: the group coordinator has not answered this member for nearly a session timeout; giving up its partitions",
				"group", cfg.Group, "session_timeout", cfg.SessionTimeout)
			lost(false)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// coordinator finds the group's coordinator, once per failure.
func (m *groupMemberState) coordinator(ctx context.Context) (net.Addr, error) {
	if m.coord != nil {
		return m.coord, nil
	}
	resp, err := m.c.client.FindCoordinator(ctx, &kafkago.FindCoordinatorRequest{
		Key: m.c.cfg.Group, KeyType: kafkago.CoordinatorKeyTypeConsumer,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return nil, fmt.Errorf("find coordinator of group %q: %w", m.c.cfg.Group, err)
	}
	m.coord = kafkago.TCP(net.JoinHostPort(resp.Coordinator.Host, strconv.Itoa(resp.Coordinator.Port)))
	return m.coord, nil
}

func (m *groupMemberState) roundTrip(ctx context.Context, req kafkago.Request) (kafkago.Response, error) {
	addr, err := m.coordinator(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := m.rt.RoundTrip(ctx, addr, req)
	if err != nil {
		m.coord = nil
	}
	return resp, err
}

// join joins the group and syncs: the leader assigns the partitions.
func (m *groupMemberState) join(ctx context.Context) (generation, error) {
	return m.joinWith(ctx, nil, -1)
}

// joinWith joins with owned, the partitions this member holds from
// generation ownedGen, which a cooperative member keeps running meanwhile.
func (m *groupMemberState) joinWith(ctx context.Context, owned map[string][]int32, ownedGen int32) (generation, error) {
	cfg := m.c.cfg
	partitions, err := m.c.partitionCounts(ctx)
	if err != nil {
		return generation{}, err
	}
	m.partitions = partitions
	var missing []string
	for _, t := range cfg.Topics {
		if partitions[t] == 0 {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		cfg.Logger.Warn("ordo: topics of the group do not exist; waiting for them", "group", cfg.Group,
			"topics", missing, "retry_in", cfg.PartitionWatchInterval)
	}
	protocol := protocolRange
	sub := subscription{topics: cfg.Topics}
	if cfg.Rebalance == Cooperative {
		protocol = protocolCooperativeSticky
		sub.owned, sub.userData = owned, stickyUserData(ownedGen)
	}
	meta := encodeSubscription(sub)
	var jr *joingroup.Response
	for attempt := 0; ; attempt++ {
		joinCtx, cancel := context.WithTimeout(ctx, cfg.RebalanceTimeout+cfg.SessionTimeout)
		resp, err := m.roundTrip(joinCtx, &joingroup.Request{
			GroupID:            cfg.Group,
			SessionTimeoutMS:   int32(cfg.SessionTimeout.Milliseconds()),
			RebalanceTimeoutMS: int32(cfg.RebalanceTimeout.Milliseconds()),
			MemberID:           m.memberID,
			GroupInstanceID:    cfg.InstanceID,
			ProtocolType:       "consumer",
			Protocols:          []joingroup.RequestProtocol{{Name: protocol, Metadata: meta}},
		})
		cancel()
		if err != nil {
			return generation{}, fmt.Errorf("join group %q: %w", cfg.Group, err)
		}
		jr = resp.(*joingroup.Response)
		code := kafkago.Error(jr.ErrorCode)
		switch {
		case jr.ErrorCode == 0:
		case code == kafkago.MemberIDRequired && attempt == 0:
			// KIP-394: a new member learns its id and joins with it.
			m.memberID = jr.MemberID
			continue
		case code == kafkago.NotCoordinatorForGroup || code == kafkago.GroupCoordinatorNotAvailable:
			m.coord = nil
			return generation{}, fmt.Errorf("join group %q: %w", cfg.Group, code)
		default:
			return generation{}, fmt.Errorf("join group %q: %w", cfg.Group, code)
		}
		break
	}
	m.memberID = jr.MemberID
	gen := generation{id: jr.GenerationID, memberID: jr.MemberID, leader: jr.LeaderID == jr.MemberID}

	var assignments []syncgroup.RequestAssignment
	if gen.leader {
		members := make([]groupMember, 0, len(jr.Members))
		for _, jm := range jr.Members {
			sub, err := decodeSubscription(jm.Metadata)
			if err != nil {
				return generation{}, fmt.Errorf("group %q member %s: %w", cfg.Group, jm.MemberID, err)
			}
			members = append(members, groupMember{id: jm.MemberID, instanceID: jm.GroupInstanceID, sub: sub})
		}
		// The counts read for this join serve unless another member
		// subscribes to topics this one does not.
		counts := m.partitions
		if topics := subscribedTopics(members); slices.ContainsFunc(topics, func(t string) bool { _, ok := counts[t]; return !ok }) {
			if counts, err = m.c.partitionCounts(ctx, topics...); err != nil {
				return generation{}, err
			}
		}
		assigned := assignRange(members, counts)
		var userData []byte
		if protocol == protocolCooperativeSticky {
			assigned = assignCooperativeSticky(members, counts)
			if takesOwned(members, assigned) {
				userData = secondRoundUserData
			}
		}
		for id, parts := range assigned {
			assignments = append(assignments, syncgroup.RequestAssignment{MemberID: id, Assignment: encodeAssignment(parts, userData)})
		}
	}
	syncCtx, cancel := context.WithTimeout(ctx, cfg.RebalanceTimeout+cfg.SessionTimeout)
	defer cancel()
	syncSent := time.Now()
	resp, err := m.roundTrip(syncCtx, &syncgroup.Request{
		GroupID:         cfg.Group,
		GenerationID:    gen.id,
		MemberID:        gen.memberID,
		GroupInstanceID: cfg.InstanceID,
		ProtocolType:    "consumer",
		ProtocolName:    protocol,
		Assignments:     assignments,
	})
	if err != nil {
		return generation{}, fmt.Errorf("sync group %q: %w", cfg.Group, err)
	}
	sr := resp.(*syncgroup.Response)
	if sr.ErrorCode != 0 {
		return generation{}, fmt.Errorf("sync group %q: %w", cfg.Group, kafkago.Error(sr.ErrorCode))
	}
	var userData []byte
	if gen.assigned, userData, err = decodeAssignment(sr.Assignments); err != nil {
		return generation{}, fmt.Errorf("sync group %q: %w", cfg.Group, err)
	}
	gen.secondRound = protocol == protocolCooperativeSticky && bytes.Equal(userData, secondRoundUserData)
	m.confirm(syncSent)
	return gen, nil
}

func subscribedTopics(members []groupMember) []string {
	var topics []string
	for _, m := range members {
		for _, t := range m.sub.topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	return topics
}

// run hands the generation to fn and heartbeats until it ends: nil when ctx
// ended, errRejoin for a rebalance or a partition change, or why the member
// lost its place. fn has returned, and the session is closed, when run
// returns.
func (m *groupMemberState) run(ctx context.Context, gen generation) error {
	cfg := m.c.cfg
	m.generations++
	sess := m.c.newSession(gen, cfg.InstanceID, &m.stopping)
	cfg.Logger.Info("ordo: partitions assigned", "group", cfg.Group,
		"generation", gen.id, "member", gen.memberID, "partitions", sess.describe())
	done := make(chan struct{})
	sess.done = done
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		defer sess.close()
		m.fn(sess)
	}()
	err := m.heartbeats(ctx, gen)
	if err == nil {
		m.stopping.Store(true)
	}
	close(done)
	<-returned
	return err
}

// beatTimeout is how long a heartbeat waits for its answer: a heartbeat
// interval, and at least a second, never more than the session. A
// coordinator that died (its broker killed, and not yet fenced by the
// controller, so FindCoordinator still names it) can leave a request
// hanging; waiting a session timeout for each of the two unanswered beats
// kept a member running jobs, whose commits all failed, for two sessions.
func beatTimeout(cfg ConsumerConfig) time.Duration {
	return min(cfg.SessionTimeout, max(cfg.HeartbeatInterval, time.Second))
}

// followUpBeat is how often a member heartbeats while it waits for the
// second round of a cooperative rebalance: it bounds how long a partition
// that moves sits idle between its release and its new owner's start.
const followUpBeat = 50 * time.Millisecond

// errUnreachable ends a generation whose coordinator did not answer two
// heartbeats in a row.
var errUnreachable = errors.New("kafka: the group coordinator does not answer")

// heartbeats heartbeats gen and watches the topics' partition counts until
// the generation ends: nil when ctx ended, errRejoin for a rebalance or a
// partition change, the coordinator's verdict when it put this member out
// (unknown member, illegal generation, fenced: its commits will be refused),
// or errUnreachable. An unreachable coordinator ends the generation: going
// on would run jobs whose commits it may refuse and, once it has given the
// partitions to another member, run them beside the new owner; kafka-go's
// group did the same.
func (m *groupMemberState) heartbeats(ctx context.Context, gen generation) error {
	cfg := m.c.cfg
	beat := time.NewTicker(cfg.HeartbeatInterval)
	defer beat.Stop()
	var slowDown <-chan time.Time
	if gen.secondRound {
		// Watch closely for the round the leader announced; should it not
		// come within a rebalance timeout (its owner died while draining,
		// say), the session timeout brings it, and the beats slow down.
		beat.Reset(min(cfg.HeartbeatInterval, followUpBeat))
		slowDown = time.After(cfg.RebalanceTimeout)
	}
	watch := time.NewTicker(cfg.PartitionWatchInterval)
	defer watch.Stop()
	lease := m.leaseTimer()
	defer lease.Stop()
	failed := 0
	for {
		// Checked after every beat too: one the coordinator left
		// unanswered may have outlasted the lease.
		if m.leaseOver(lease) {
			return errLeaseExpired
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lease.C: // checked at the top
		case <-slowDown:
			beat.Reset(cfg.HeartbeatInterval)
			slowDown = nil
		case <-watch.C:
			counts, err := m.c.partitionCounts(ctx)
			if err == nil && !countsEqual(counts, m.partitions) {
				cfg.Logger.Info("ordo: the group's topics changed; rejoining", "group", cfg.Group,
					"partitions_before", m.partitions, "partitions_now", counts)
				return errRejoin
			}
		case <-beat.C:
			err := m.heartbeat(ctx, gen)
			switch {
			case err == nil:
				failed = 0
			case errors.Is(err, kafkago.RebalanceInProgress):
				return errRejoin
			case errors.As(err, new(kafkago.Error)):
				return err
			default:
				if failed++; failed >= 2 {
					return fmt.Errorf("%w: %d heartbeats in a row failed: %w", errUnreachable, failed, err)
				}
				m.coord = nil // the coordinator may have moved: find it again at the next beat
				if slowDown != nil {
					// Two quick failures must not give up the
					// partitions sooner than two beats would.
					beat.Reset(cfg.HeartbeatInterval)
					slowDown = nil
				}
			}
		}
	}
}

func countsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (m *groupMemberState) heartbeat(ctx context.Context, gen generation) error {
	beatCtx, cancel := context.WithTimeout(ctx, beatTimeout(m.c.cfg))
	defer cancel()
	addr, err := m.coordinator(beatCtx)
	if err != nil {
		return err
	}
	err = m.heartbeatAt(beatCtx, addr, gen)
	if errors.Is(err, errNotCoordinator) {
		m.coord = nil
	}
	return err
}

// errNotCoordinator says a heartbeat reached a broker that is no longer
// the group's coordinator: not a verdict on the member.
var errNotCoordinator = errors.New("not the group's coordinator")

// heartbeatAt heartbeats gen to the coordinator at addr. It touches none
// of the member's state but confirmed, so it may run beside a join.
func (m *groupMemberState) heartbeatAt(ctx context.Context, addr net.Addr, gen generation) (err error) {
	if told := m.c.heartbeatHook; told != nil {
		defer func() { told(err) }()
	}
	cfg := m.c.cfg
	sent := time.Now()
	resp, err := m.rt.RoundTrip(ctx, addr, &heartbeat.Request{
		GroupID: cfg.Group, GenerationID: gen.id, MemberID: gen.memberID, GroupInstanceID: cfg.InstanceID,
	})
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	hr := resp.(*heartbeat.Response)
	code := errorCode(hr.ErrorCode, hr.ThrottleTimeMs)
	if e := kafkago.Error(code); code == 0 || e == kafkago.RebalanceInProgress {
		m.confirm(sent) // the coordinator knows the member: its session runs on
	}
	if code != 0 {
		if e := kafkago.Error(code); e == kafkago.NotCoordinatorForGroup || e == kafkago.GroupCoordinatorNotAvailable {
			return fmt.Errorf("heartbeat: %w: %s", errNotCoordinator, e.Error())
		}
		return fmt.Errorf("heartbeat: %w", kafkago.Error(code))
	}
	return nil
}

// leave sends LeaveGroup, so the others take the partitions at once rather
// than after the session timeout. A static member leaves only when asked
// (Consumer.Leave): it means to come back within the session timeout and
// find its partitions waiting.
func (m *groupMemberState) leave() {
	cfg := m.c.cfg
	if m.memberID == "" || (cfg.InstanceID != "" && !m.c.leave.Load()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := m.roundTrip(ctx, &leavegroup.Request{
		GroupID:  cfg.Group,
		MemberID: m.memberID,
		Members:  []leavegroup.RequestMember{{MemberID: m.memberID, GroupInstanceID: cfg.InstanceID}},
	})
	if err == nil {
		lr := resp.(*leavegroup.Response)
		if code := errorCode(lr.ErrorCode, lr.ThrottleTimeMS); code != 0 {
			err = kafkago.Error(code)
		}
	}
	if err != nil {
		cfg.Logger.Warn("ordo: leaving the group failed; the others take over after the session timeout",
			"group", cfg.Group, "err", err)
	}
}

// Leave makes the member send LeaveGroup when Run stops, even if it is
// static: its partitions move to the others at once instead of waiting a
// session timeout for it to come back. Call it before ending Run's context,
// when a static member is going away for good (a scale-down).
func (c *Consumer) Leave() { c.leave.Store(true) }

// partitionCounts reads the partition count of topics (default: the
// consumer's topics). A topic that does not exist counts zero partitions.
func (c *Consumer) partitionCounts(ctx context.Context, topics ...string) (map[string]int, error) {
	if len(topics) == 0 {
		topics = c.cfg.Topics
	}
	metaCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	meta, err := c.client.Metadata(metaCtx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", topics, err)
	}
	counts := make(map[string]int, len(topics))
	for _, t := range topics {
		counts[t] = 0
	}
	for _, t := range meta.Topics {
		switch {
		case t.Error == nil:
			counts[t.Name] = len(t.Partitions)
		case errors.Is(t.Error, kafkago.UnknownTopicOrPartition):
		case errors.Is(t.Error, kafkago.InvalidTopic), errors.Is(t.Error, kafkago.TopicAuthorizationFailed):
			return nil, fmt.Errorf("topic %q: %w", t.Name, t.Error)
		}
	}
	return counts, nil
}

// errorCode reads the error code of a Heartbeat or LeaveGroup response as
// kafka-go decodes it. kafka-go declares ErrorCode before ThrottleTimeMs in
// both, where the protocol (version 1 on) puts the throttle time first: it
// reads the throttle time's top half as the error code, and the real code
// ends up in the low 16 bits of its ThrottleTimeMs. A member that believed
// it would never learn of a rebalance from its heartbeats.
func errorCode(code int16, throttle int32) int16 {
	if code != 0 {
		return code // version 0, or a throttle of over 65 s
	}
	return int16(uint32(throttle) & 0xffff)
}
