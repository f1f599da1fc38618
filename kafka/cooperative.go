package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// PartitionHandler receives a cooperative member's partitions as they come
// and go (RunCooperative).
type PartitionHandler interface {
	// Assigned is called once for every assignment the member receives
	// (each round of each rebalance, the first join included), after the
	// partitions the round takes away were revoked, and hands over the
	// partitions newly assigned: none when the round changed nothing for
	// this member, or gave it nothing. sess commits for them, in whatever
	// generation is current. It must return soon: the claims are to be
	// fetched elsewhere.
	Assigned(sess *Session, claims []*Claim)
	// Revoked takes partitions back: it returns once their work is drained
	// and their final offsets committed. stopping says the member is
	// shutting down (every partition goes); lost says the member lost
	// its place in the group, so commits will be refused.
	Revoked(claims []*Claim, stopping, lost bool)
}

// RunCooperative runs a member of a group that rebalances cooperatively
// (ConsumerConfig.Rebalance = Cooperative): a rebalance takes back only the
// partitions that move, and the member keeps running the others through it.
// It returns as Run does: nil when ctx ends, after every partition was
// revoked; an error wrapping ErrMembershipFailed when the group refuses the
// member for good.
func (c *Consumer) RunCooperative(ctx context.Context, h PartitionHandler) error {
	if c.cfg.Rebalance != Cooperative {
		return errors.New("kafka: RunCooperative needs ConsumerConfig.Rebalance = Cooperative")
	}
	tr := c.cfg.Security.transport()
	defer tr.CloseIdleConnections()
	m := &groupMemberState{c: c, rt: tr}
	defer m.leave()
	sess := &Session{consumer: c, instanceID: c.cfg.InstanceID, stopping: &m.stopping, owned: map[topicPartition]bool{}}
	done := make(chan struct{})
	sess.done = done
	defer close(done)
	coop := &cooperativeMember{groupMemberState: m, h: h, sess: sess, claims: map[topicPartition]*Claim{}, gen: -1}
	m.holding = func() bool { return len(coop.claims) > 0 }
	defer coop.revokeAll(true, false) // stopping: drained and committed before leaving
	return m.runGenerations(ctx, func(ctx context.Context) (bool, error) {
		err := coop.round(ctx)
		joined := err == nil
		if joined {
			err = coop.beat(ctx)
		}
		if errors.Is(err, errUnreachable) {
			// Joining or beating, the member may be out of the group
			// by now: its partitions may be another's any moment.
			coop.revokeAll(false, true)
		}
		return joined, err
	}, func(forGood bool) { coop.revokeAll(forGood, true) }) // out of the group: give it all up, uncommitted
}

// cooperativeMember is RunCooperative's state: the claims it holds across
// generations.
type cooperativeMember struct {
	*groupMemberState
	h      PartitionHandler
	sess   *Session
	claims map[topicPartition]*Claim
	gen    int32 // the generation the claims are from
	// secondRound says the last round announced another (see
	// secondRoundUserData).
	secondRound bool
	// rejoinNow asks for the next round at once: this one took
	// partitions back, which their new owners wait for.
	rejoinNow bool
}

func (c *cooperativeMember) owned() map[string][]int32 {
	out := map[string][]int32{}
	for k := range c.claims {
		out[k.topic] = append(out[k.topic], int32(k.partition))
	}
	return out
}

// round joins and syncs once, then gives up what it must and starts what it
// got. A round that gave anything up asks for the next at once (errRejoin
// through beat), so the partitions reach their new owner.
func (c *cooperativeMember) round(ctx context.Context) error {
	cfg := c.c.cfg
	c.sess.beginRound()
	joinCtx, stopWatch := c.watchLease(ctx)
	gen, err := c.joinWith(joinCtx, c.owned(), c.gen)
	if err != nil && errors.Is(context.Cause(joinCtx), errLeaseExpired) {
		err = fmt.Errorf("%w (while joining: %w)", errLeaseExpired, err)
	}
	stopWatch()
	if err != nil {
		c.sess.endRound(nil)
		return err
	}
	c.generations++
	c.gen, c.secondRound = gen.id, gen.secondRound
	c.sess.endRound(&gen)

	assigned := map[topicPartition]bool{}
	for t, ps := range gen.assigned {
		for _, p := range ps {
			assigned[topicPartition{t, int(p)}] = true
		}
	}
	var revoked []*Claim
	for k, cl := range c.claims {
		if !assigned[k] {
			revoked = append(revoked, cl)
		}
	}
	var added []*Claim
	for k := range assigned {
		if _, ok := c.claims[k]; !ok {
			added = append(added, &Claim{session: c.sess, Topic: k.topic, Partition: k.partition,
				Start: kafkago.FirstOffset, revoked: make(chan struct{})})
		}
	}
	slices.SortFunc(added, func(a, b *Claim) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	cfg.Logger.Info("ordo: partitions assigned", "group", cfg.Group, "generation", gen.id, "member", gen.memberID,
		"rebalance", "cooperative", "kept", len(c.claims)-len(revoked), "added", describeClaims(added), "revoked", describeClaims(revoked))
	if len(revoked) > 0 {
		c.revoke(revoked, false, false)
	}
	if len(added) > 0 {
		c.c.readStartOffsets(added)
		c.sess.mu.Lock()
		for _, cl := range added {
			c.claims[topicPartition{cl.Topic, cl.Partition}] = cl
			c.sess.owned[topicPartition{cl.Topic, cl.Partition}] = true
		}
		c.sess.mu.Unlock()
	}
	// Even with nothing added: the handler learns that an assignment
	// arrived, which a member given no partition waits for to be ready.
	c.h.Assigned(c.sess, added)
	if len(revoked) > 0 {
		c.rejoinNow = true
	}
	return nil
}

// watchLease keeps the member's lease (see leaseEnd) while it joins with
// partitions it runs: it heartbeats the generation they are from, which the
// coordinator answers REBALANCE_IN_PROGRESS for a member it knows, and
// cancels the join, with errLeaseExpired as the cause, once the lease runs
// out. A join waits for every member and may take a rebalance timeout; a
// coordinator that died meanwhile answers neither. stop ends the watch.
func (c *cooperativeMember) watchLease(ctx context.Context) (joinCtx context.Context, stop func()) {
	if len(c.claims) == 0 || c.memberID == "" {
		return ctx, func() {}
	}
	cfg := c.c.cfg
	gen, addr := generation{id: c.gen, memberID: c.memberID}, c.coord
	joinCtx, cancel := context.WithCancelCause(ctx)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		beat := time.NewTicker(cfg.HeartbeatInterval)
		defer beat.Stop()
		lease := c.leaseTimer()
		defer lease.Stop()
		for {
			select {
			case <-done:
				return
			case <-beat.C:
				if addr != nil { // the join finds the coordinator if it moved; these beats only keep the lease
					beatCtx, cancelBeat := context.WithTimeout(joinCtx, beatTimeout(cfg))
					_ = c.heartbeatAt(beatCtx, addr, gen)
					cancelBeat()
				}
			case <-lease.C:
				if c.leaseOver(lease) {
					cancel(errLeaseExpired)
					return
				}
			}
		}
	}()
	return joinCtx, func() {
		close(done)
		<-finished
		cancel(nil)
	}
}

// revoke hands claims back to the handler, then forgets them: their
// commits are refused from then on. The member keeps heartbeating while the
// handler drains, so a slow drain does not cost it its place.
func (c *cooperativeMember) revoke(claims []*Claim, stopping, lost bool) {
	for _, cl := range claims {
		close(cl.revoked)
	}
	drained := make(chan struct{})
	if !stopping && !lost && c.memberID != "" {
		gen := generation{id: c.gen, memberID: c.memberID}
		go func() {
			t := time.NewTicker(c.c.cfg.HeartbeatInterval)
			defer t.Stop()
			for {
				select {
				case <-drained:
					return
				case <-t.C:
					_ = c.heartbeat(context.Background(), gen) // a rebalance is noticed by the next beat loop
				}
			}
		}()
	}
	c.h.Revoked(claims, stopping, lost)
	close(drained)
	c.sess.mu.Lock()
	for _, cl := range claims {
		k := topicPartition{cl.Topic, cl.Partition}
		delete(c.claims, k)
		delete(c.sess.owned, k)
	}
	c.sess.mu.Unlock()
	for _, cl := range claims {
		cl.Close()
	}
}

func (c *cooperativeMember) revokeAll(stopping, lost bool) {
	if stopping {
		c.stopping.Store(true)
	}
	if len(c.claims) == 0 {
		return
	}
	all := make([]*Claim, 0, len(c.claims))
	for _, cl := range c.claims {
		all = append(all, cl)
	}
	c.revoke(all, stopping, lost)
}

// beat heartbeats until the generation ends: nil when ctx ended, errRejoin
// for a rebalance (the member keeps its partitions meanwhile), or why it
// lost its place.
func (c *cooperativeMember) beat(ctx context.Context) error {
	if c.rejoinNow {
		c.rejoinNow = false
		return errRejoin
	}
	return c.heartbeats(ctx, generation{id: c.gen, memberID: c.memberID, secondRound: c.secondRound})
}
