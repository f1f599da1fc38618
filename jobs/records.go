package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
)

// recordServerConfig configures a recordServer: a consumer group member
// (Consumer) and the actor runtime its records run on (Runtime).
type recordServerConfig struct {
	Consumer kafka.ConsumerConfig
	Runtime  actors.Config
}

// recordServer runs a record handler over a consumer group with ordo's
// guarantees: records of one virtual-partition key run one at a time in
// offset order, different keys run concurrently, offsets are committed only
// below records that finished, and a revocation drains in-flight records
// before the partition is let go. Server builds typed jobs on top of it.
type recordServer struct {
	consumer    *kafka.Consumer
	consumerCfg kafka.ConsumerConfig
	runtime     *actors.Runtime
	cooperative bool
	// side runs the partitions of the topics it runs itself, beside the
	// runtime (the schedules partitions); nil when there are none.
	// running are the side partitions of a cooperative member, each with
	// the channel closed once it was let go; only the member's goroutine
	// touches it.
	side    claimRunner
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
	// ErrServerStopped is returned by Start after Stop: a server runs once;
	// build a new one to run again.
	ErrServerStopped = errors.New("jobs: the server was stopped; a server starts once")
	// ErrServerStarted is returned by a second Start.
	ErrServerStarted = errors.New("jobs: the server is already started")
)

// newRecordServer validates the configuration; it does not contact Kafka.
func newRecordServer(cfg recordServerConfig) (*recordServer, error) {
	consumer, err := kafka.NewConsumer(cfg.Consumer)
	if err != nil {
		return nil, err
	}
	rt, err := actors.NewRuntime(cfg.Runtime)
	if err != nil {
		return nil, err
	}
	return &recordServer{consumer: consumer, consumerCfg: cfg.Consumer, runtime: rt, cooperative: cfg.Consumer.Rebalance == kafka.Cooperative,
		running: map[kafka.Offset]<-chan struct{}{}, ready: make(chan struct{}), done: make(chan struct{})}, nil
}

// claimRunner runs the partitions of some of the group's topics itself,
// beside the actor runtime: the schedules partitions, whose records are
// schedules to dispatch rather than jobs to run.
type claimRunner interface {
	// runs tells whether topic's partitions are the runner's.
	runs(topic string) bool
	// begin runs the claims of one assignment (possibly none), each until
	// it is revoked; each one's channel is closed once it was let go (its
	// last offset committed).
	begin(sess *kafka.Session, claims []*kafka.Claim) []<-chan struct{}
}

// runBeside has the member subscribe to topics as well, whose partitions
// side runs. Call it before Start.
func (s *recordServer) runBeside(side claimRunner, topics []string) error {
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
func (s *recordServer) split(claims []*kafka.Claim) (runtime, side []*kafka.Claim) {
	for _, c := range claims {
		if s.side != nil && s.side.runs(c.Topic) {
			side = append(side, c)
		} else {
			runtime = append(runtime, c)
		}
	}
	return runtime, side
}

// beginSide hands side claims to side (none when there is no side).
func (s *recordServer) beginSide(sess *kafka.Session, claims []*kafka.Claim) []<-chan struct{} {
	if s.side == nil {
		return nil
	}
	return s.side.begin(sess, claims)
}

// Generations returns how many group generations (assignments) this server
// has received: one for joining, then one per rebalance round.
func (s *recordServer) Generations() int64 { return s.generations.Load() }

// Runtime gives access to the actor runtime, for its Stats.
func (s *recordServer) Runtime() *actors.Runtime { return s.runtime }

// checkStartLocked says whether Start may run; s.mu is held.
func (s *recordServer) checkStartLocked() error {
	switch {
	case s.stopped:
		return ErrServerStopped
	case s.cancel != nil:
		return ErrServerStarted
	}
	return nil
}

// Start joins the group and begins processing in the background. ctx bounds
// only the start; once Start returned, the server runs until Stop or until
// it stops by itself (see Done).
func (s *recordServer) Start(ctx context.Context) error {
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
func (s *recordServer) runEager(runCtx context.Context) error {
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
type cooperativeRuntime struct{ s *recordServer }

// Assigned is called for every assignment received, with no claims when
// the round added none: it counts each one and closes Ready at the first,
// so that a server the group gives nothing is ready too.
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

func (s *recordServer) noteErr(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
}

// Ready is closed once the first assignment was received and started.
func (s *recordServer) Ready() <-chan struct{} { return s.ready }

// Done is closed when the server has stopped: after Stop, or by itself.
func (s *recordServer) Done() <-chan struct{} { return s.done }

// Err is why the server stopped by itself, once Done is closed; nil while it
// runs and after Stop.
func (s *recordServer) Err() error {
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
// ends first. Stop on a server that was never started only marks it stopped.
func (s *recordServer) Stop(ctx context.Context) error {
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
		return fmt.Errorf("jobs: stop: %w", ctx.Err())
	}
	s.runtime.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.lastErr, s.runErr)
}

// runGeneration hands the generation's partitions to the runtime and, when
// the generation ends, takes them back: all of them, since kafka-go's group
// is eager. A shutdown is bounded by the runtime's ShutdownTimeout.
func (s *recordServer) runGeneration(sess *kafka.Session) error {
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

// replayMarker tells whether r is the marker a replay appends to a
// dead-letter topic (see HeaderReplayOf), which a server reading that topic
// to re-run its dead letters commits without running or dead-lettering it.
// Only a record that is no job (it has no worker) is asked.
func replayMarker(r *kafka.Record) bool {
	return len(r.Value) == 0 && header(r, HeaderReplayOf) != nil
}
