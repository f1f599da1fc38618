package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
)

// RecordServerConfig configures a RecordServer: a consumer group member
// (Consumer) and the actor runtime its records run on (Runtime).
type RecordServerConfig struct {
	Consumer kafka.ConsumerConfig
	Runtime  actors.Config
}

// RecordServer runs a record handler over a consumer group with ordo's
// guarantees: records of one virtual-partition key run one at a time in
// offset order, different keys run concurrently, offsets are committed only
// below records that finished, and a revocation drains in-flight records
// before the partition is let go. Server builds typed jobs on top of it.
type RecordServer struct {
	consumer *kafka.Consumer
	runtime  *actors.Runtime
	// generations counts the assignments received: the first join, then
	// one per rebalance this member took part in.
	generations atomic.Int64

	mu      sync.Mutex
	cancel  context.CancelFunc
	exited  chan struct{}
	runErr  error
	lastErr error
}

// NewRecordServer validates the configuration; it does not contact Kafka.
func NewRecordServer(cfg RecordServerConfig) (*RecordServer, error) {
	consumer, err := kafka.NewConsumer(cfg.Consumer)
	if err != nil {
		return nil, err
	}
	rt, err := actors.NewRuntime(cfg.Runtime)
	if err != nil {
		return nil, err
	}
	return &RecordServer{consumer: consumer, runtime: rt}, nil
}

// Generations returns how many group generations (assignments) this server
// has received: one for joining, then one per rebalance.
func (s *RecordServer) Generations() int64 { return s.generations.Load() }

// Runtime gives access to the actor runtime, for its Stats.
func (s *RecordServer) Runtime() *actors.Runtime { return s.runtime }

// Start joins the group and begins processing in the background. ctx bounds
// only the start; use Stop to stop.
func (s *RecordServer) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return errors.New("jobs: RecordServer already started")
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.exited = make(chan struct{})
	go func() {
		defer close(s.exited)
		err := s.consumer.Run(runCtx, func(sess *kafka.Session) {
			s.generations.Add(1)
			err := s.runGeneration(sess)
			for _, c := range sess.Claims() {
				c.Close()
			}
			if err != nil {
				s.mu.Lock()
				s.lastErr = err
				s.mu.Unlock()
			}
		})
		s.mu.Lock()
		s.runErr = err
		s.mu.Unlock()
	}()
	return nil
}

// Stop stops fetching, lets records in flight finish (up to the runtime's
// ShutdownTimeout, after which their contexts are cancelled), commits, and
// leaves the group. It returns an error wrapping actors.ErrShutdownTimeout
// that names the records left when the timeout passed, or ctx's error if ctx
// ends first.
func (s *RecordServer) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, exited := s.cancel, s.exited
	s.mu.Unlock()
	if cancel == nil {
		return errors.New("jobs: RecordServer not started")
	}
	cancel()
	select {
	case <-exited:
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
func (s *RecordServer) runGeneration(sess *kafka.Session) error {
	claims := sess.Claims()
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
	<-sess.Done()
	if sess.Stopping() {
		errs = append(errs, s.runtime.Shutdown())
	} else {
		errs = append(errs, s.runtime.Revoke(parts...))
	}
	return errors.Join(errs...)
}
