// Package run runs a consumer group's records on the actor runtime: one
// group member whose job partitions it assigns to, and revokes from, an
// actors.Runtime, and whose other partitions (the schedules partitions) a
// ClaimRunner runs beside it. It connects package kafka to package actors,
// so that neither knows the other; it knows nothing of jobs.
package run

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
)

// Config configures a Member: its consumer (Consumer) and the actor
// runtime its records run on (Runtime).
type Config struct {
	Consumer kafka.ConsumerConfig
	Runtime  actors.Config
}

// Member runs a record handler over a consumer group with ordo's
// guarantees: records of one virtual-partition key run one at a time in
// offset order, different keys run concurrently, offsets are committed only
// below records that finished, and a revocation drains in-flight records
// before the partition is let go. A job server (internal/server) runs typed
// jobs on it.
type Member struct {
	consumer    *kafka.Consumer
	consumerCfg kafka.ConsumerConfig
	runtime     *actors.Runtime
	cooperative bool
	// side runs the partitions of the topics it runs itself, beside the
	// runtime (the schedules partitions); nil when there are none.
	// running are the side partitions of a cooperative member, each with
	// the channel closed once it was let go; only the member's goroutine
	// touches it.
	side    ClaimRunner
	running map[kafka.Offset]<-chan struct{}
	// generations counts the assignments received: the first join, then
	// one per rebalance round this member took part in (a cooperative
	// rebalance that moves partitions has two), whether or not the round
	// changed its partitions.
	generations atomic.Int64

	ready     chan struct{} // closed at the first assignment
	readyOnce sync.Once
	done      chan struct{} // closed when the member has stopped
	doneOnce  sync.Once

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped bool // Stop was called
	runErr  error
	lastErr error
}

var (
	// ErrStopped is returned by Start after Stop: a member runs once.
	ErrStopped = errors.New("run: the member was stopped; a member starts once")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("run: the member is already started")
)

// New validates the configuration; it does not contact Kafka.
func New(cfg Config) (*Member, error) {
	consumer, err := kafka.NewConsumer(cfg.Consumer)
	if err != nil {
		return nil, err
	}
	rt, err := actors.NewRuntime(cfg.Runtime)
	if err != nil {
		return nil, err
	}
	return &Member{consumer: consumer, consumerCfg: cfg.Consumer, runtime: rt, cooperative: cfg.Consumer.Rebalance == kafka.Cooperative,
		running: map[kafka.Offset]<-chan struct{}{}, ready: make(chan struct{}), done: make(chan struct{})}, nil
}

// ClaimRunner runs the partitions of some of the group's topics itself,
// beside the actor runtime: the schedules partitions, whose records are
// schedules to dispatch rather than jobs to run.
type ClaimRunner interface {
	// Runs tells whether topic's partitions are the runner's.
	Runs(topic string) bool
	// Begin runs the claims of one assignment (possibly none), each until
	// it is revoked; each one's channel is closed once it was let go (its
	// last offset committed).
	Begin(sess *kafka.Session, claims []*kafka.Claim) []<-chan struct{}
}

// RunBeside has the member subscribe to topics as well, whose partitions
// side runs. Call it before Start.
func (s *Member) RunBeside(side ClaimRunner, topics []string) error {
	cfg := s.consumerCfg
	cfg.Topics = append(slices.Clone(cfg.Topics), topics...)
	consumer, err := kafka.NewConsumer(cfg)
	if err != nil {
		return err
	}
	s.consumer, s.side = consumer, side
	return nil
}

// split parts claims into the runtime's and side's.
func (s *Member) split(claims []*kafka.Claim) (runtime, side []*kafka.Claim) {
	for _, c := range claims {
		if s.side != nil && s.side.Runs(c.Topic) {
			side = append(side, c)
		} else {
			runtime = append(runtime, c)
		}
	}
	return runtime, side
}

// beginSide hands side claims to side (none when there is no side).
func (s *Member) beginSide(sess *kafka.Session, claims []*kafka.Claim) []<-chan struct{} {
	if s.side == nil {
		return nil
	}
	return s.side.Begin(sess, claims)
}

// Generations returns how many group generations (assignments) this member
// has received: one for joining, then one per rebalance round.
func (s *Member) Generations() int64 { return s.generations.Load() }

// Leave has the member leave the group when it stops, even as a static
// member, so that its partitions move at once.
func (s *Member) Leave() { s.consumer.Leave() }

// Runtime gives access to the actor runtime, for its Stats.
func (s *Member) Runtime() *actors.Runtime { return s.runtime }

// checkStartLocked says whether Start may run; s.mu is held.
func (s *Member) checkStartLocked() error {
	switch {
	case s.stopped:
		return ErrStopped
	case s.cancel != nil:
		return ErrStarted
	}
	return nil
}

// Start joins the group and begins processing in the background. ctx bounds
// only the start; once Start returned, the member runs until Stop or until
// it stops by itself (see Done).
func (s *Member) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkStartLocked(); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		var err error
		if s.cooperative {
			err = s.consumer.RunCooperative(runCtx, cooperativeRuntime{s})
		} else {
			err = s.runEager(runCtx)
		}
		s.mu.Lock()
		s.runErr = err
		s.mu.Unlock()
		if err != nil {
			s.runtime.Close() // stopped by itself: nothing will call Stop's clean-up
		}
		s.doneOnce.Do(func() { close(s.done) })
	}()
	return nil
}

// runEager runs the eager member: each generation's partitions are assigned
// at its start and all revoked at its end.
func (s *Member) runEager(runCtx context.Context) error {
	return s.consumer.Run(runCtx, func(sess *kafka.Session) {
		s.generations.Add(1)
		err := s.runGeneration(sess)
		for _, c := range sess.Claims() {
			c.Close()
		}
		s.noteErr(err)
	})
}

// cooperativeRuntime hands a cooperative member's partitions to the runtime
// one by one: the partitions that stay are never touched by a rebalance.
type cooperativeRuntime struct{ s *Member }

// Assigned is called for every assignment received, with no claims when
// the round added none: it counts each one and closes Ready at the first,
// so that a member the group gives nothing is ready too.
func (h cooperativeRuntime) Assigned(sess *kafka.Session, claims []*kafka.Claim) {
	h.s.generations.Add(1)
	claims, side := h.s.split(claims)
	for i, done := range h.s.beginSide(sess, side) {
		h.s.running[kafka.Offset{Topic: side[i].Topic, Partition: side[i].Partition}] = done
	}
	var errs []error
	for _, c := range claims {
		errs = append(errs, h.s.runtime.Assign(actors.Assignment{Topic: c.Topic, Partition: c.Partition, Start: c.Start,
			StartMetadata: c.StartMetadata, Source: c, Generation: sess}))
	}
	h.s.readyOnce.Do(func() { close(h.s.ready) })
	h.s.noteErr(errors.Join(errs...))
}

func (h cooperativeRuntime) Revoked(claims []*kafka.Claim, stopping, lost bool) {
	claims, side := h.s.split(claims)
	defer func() {
		for _, c := range side {
			k := kafka.Offset{Topic: c.Topic, Partition: c.Partition}
			<-h.s.running[k] // revoked already: it commits and returns
			delete(h.s.running, k)
		}
	}()
	if stopping {
		h.s.noteErr(h.s.runtime.Shutdown())
		return
	}
	parts := make([]actors.TopicPartition, len(claims))
	for i, c := range claims {
		parts[i] = actors.TopicPartition{Topic: c.Topic, Partition: c.Partition}
	}
	h.s.noteErr(h.s.runtime.Revoke(parts...))
}

func (s *Member) noteErr(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// Ready is closed once the first assignment was received and started.
func (s *Member) Ready() <-chan struct{} { return s.ready }

// Done is closed when the member has stopped: after Stop, or by itself.
func (s *Member) Done() <-chan struct{} { return s.done }

// Err is why the member stopped by itself, once Done is closed; nil while it
// runs and after Stop.
func (s *Member) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		return nil
	}
	if s.stopped {
		return nil
	}
	return s.runErr
}

// Stop stops fetching, lets records in flight finish (up to the runtime's
// ShutdownTimeout, after which their contexts are cancelled), commits, and
// leaves the group. It returns an error wrapping ErrShutdownTimeout
// that names the records left when the timeout passed, or ctx's error if ctx
// ends first. Stop on a member that was never started only marks it stopped.
func (s *Member) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel := s.cancel
	s.stopped = true
	s.mu.Unlock()
	if cancel == nil {
		// Never started, and now never will be.
		s.runtime.Close()
		s.doneOnce.Do(func() { close(s.done) })
		return nil
	}
	cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		// Bare, for the caller to name: jobs.Server.Stop says "jobs: stop".
		return ctx.Err()
	}
	s.runtime.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.lastErr, s.runErr)
}

// runGeneration hands the generation's partitions to the runtime and, when
// the generation ends, takes them back: all of them, since kafka-go's group
// is eager. A shutdown is bounded by the runtime's ShutdownTimeout.
func (s *Member) runGeneration(sess *kafka.Session) error {
	claims, side := s.split(sess.Claims())
	sideDone := s.beginSide(sess, side)
	defer func() {
		for _, done := range sideDone {
			<-done
		}
	}()
	parts := make([]actors.TopicPartition, len(claims))
	var errs []error
	for i, c := range claims {
		parts[i] = actors.TopicPartition{Topic: c.Topic, Partition: c.Partition}
		err := s.runtime.Assign(actors.Assignment{Topic: c.Topic, Partition: c.Partition, Start: c.Start,
			StartMetadata: c.StartMetadata, Source: c, Generation: sess})
		if err != nil {
			errs = append(errs, err)
		}
	}
	s.readyOnce.Do(func() { close(s.ready) })
	<-sess.Done()
	if sess.Stopping() {
		errs = append(errs, s.runtime.Shutdown())
	} else {
		errs = append(errs, s.runtime.Revoke(parts...))
	}
	return errors.Join(errs...)
}
