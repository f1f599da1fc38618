// Package server assembles a job server from the lower layers: the group
// member and its actor runtime (internal/run), the executor, the dead-letter
// writer, the dispatcher of scheduled jobs, the status reports and the
// metrics, and orders its Start against its Stop (internal/lifecycle).
// Package jobs validates the user's Config, builds each layer's config from
// it, and wraps a Server in jobs.Server; this package sees none of jobs'
// types, and returns its errors bare for jobs to name.
package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/deadletter"
	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/lifecycle"
	"github.com/ordo-go/ordo/internal/metrics"
	"github.com/ordo-go/ordo/internal/run"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/internal/serverhooks"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/internal/topics"
	"github.com/ordo-go/ordo/kafka"
)

// Config is each layer's config, as package jobs built it; New fills in
// what ties the layers together (the producer, the admins, the handlers,
// the counters).
type Config struct {
	// Producer is the server's one producer, of dead letters, dispatched
	// scheduled jobs, periodic jobs and status reports.
	Producer kafka.ProducerConfig
	// Consumer is the group membership; its Brokers and Security reach
	// the admins too.
	Consumer kafka.ConsumerConfig
	// Runtime is the actor runtime but for its handlers and its commit and
	// release hooks.
	Runtime actors.Config
	// Executor is the executor but for its Tally and DeadLetter.
	Executor executor.Config
	// DeadLetter is the dead-letter writer but for its Producer and
	// Counter.
	DeadLetter deadletter.Config
	// Status is the status reporter but for its Producer, Admin, Source
	// and Tally; nil turns the reports off.
	Status *status.ReporterConfig
	// Topics is what Start checks, but for its Admin; Targets maps each
	// schedules topic it may find to the job topic that topic feeds.
	Topics  topics.Config
	Targets map[string]string
	// Schedule is the dispatcher of scheduled jobs but for its Targets,
	// Producer, Admin, Metrics, DeadLetter and Enqueue; the periodic jobs
	// it enqueues go through EnqueueChain.
	Schedule     schedule.Config
	EnqueueChain enqueue.Chain
	// Metrics receives the series; nil records nothing.
	Metrics *metrics.Set
	// StartTimeout bounds a Start whose context has no deadline, which
	// then ends with StartTimeoutCause.
	StartTimeout      time.Duration
	StartTimeoutCause error
	// ErrStopped and ErrStarted are what Start returns after Stop, and
	// during or after a Start that succeeded (lifecycle.New).
	ErrStopped, ErrStarted error
}

// Server is one job server: it consumes its group's records and runs them
// on the executor, and dispatches its schedules partitions when it has any.
type Server struct {
	cfg     Config
	records *run.Member
	dlq     *kafka.Producer
	// admin is the server's one admin client (status, the topics check
	// at each Start attempt, the dispatcher): each would otherwise hold
	// connections of its own.
	admin       *kafka.Admin
	deadLetters *deadletter.Writer
	status      *status.Reporter // nil when the reports are off
	// dispatcher sends scheduled jobs when due; nil when the server
	// dispatches none. Set by Start.
	dispatcher atomic.Pointer[schedule.Dispatcher]
	// ready is closed when the records server and the dispatcher are.
	ready chan struct{}

	// life orders Start against Stop: a Start still checking topics when
	// Stop is called starts nothing.
	life *lifecycle.Once
	// hooks are the chaos runner's and tests' (see internal/serverhooks),
	// from Start's context; run sets them before the member joins, so
	// before the runtime commits or releases anything.
	hooks serverhooks.Hooks
}

// New builds the server of cfg; it does not contact Kafka.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, ready: make(chan struct{}), life: lifecycle.New(cfg.ErrStopped, cfg.ErrStarted),
		admin: kafka.NewSecureAdmin(cfg.Consumer.Brokers, cfg.Consumer.Security)}
	var err error
	s.dlq, err = kafka.NewProducer(cfg.Producer)
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	var t *status.Tally
	if cfg.Status != nil {
		t = status.NewTally(executor.Kinds(cfg.Executor.Workers))
		rc := *cfg.Status
		rc.Producer, rc.Admin, rc.Source, rc.Tally = s.dlq, s.admin, (*stats)(s), t
		s.status = status.NewReporter(rc)
	}
	dc := cfg.DeadLetter
	dc.Producer, dc.Counter = s.dlq, deadLetterCounter{metrics: cfg.Metrics, workers: cfg.Executor.Workers, tally: t}
	s.deadLetters = deadletter.New(dc)
	ec := cfg.Executor
	ec.Tally, ec.DeadLetter = t, s.deadLetters.WriteRecord
	exec := executor.New(ec)
	rt := cfg.Runtime
	rt.Handler, rt.Batch, rt.BatchHandler = exec.Handle, exec.BatchRule(), exec.HandleBatch
	// The hooks are read at each commit and release, so that Start may
	// set them after.
	rt.OnCommitted = func(o kafka.Offset) {
		if s.hooks.Committed != nil {
			s.hooks.Committed(o)
		}
	}
	rt.OnReleased = func(topic string, partition int) {
		if s.hooks.Released != nil {
			s.hooks.Released(topic, partition)
		}
	}
	s.records, err = run.New(run.Config{Consumer: cfg.Consumer, Runtime: rt})
	if err != nil {
		return nil, err
	}
	cfg.Metrics.Attach((*stats)(s))
	return s, nil
}

// StartError is Start failing at a step of the server's own (checking the
// topics, adding the schedules partitions), which the caller names as its
// own: jobs says "jobs: Start: …". A *topics.MissingError is one.
type StartError struct{ Err error }

func (e *StartError) Error() string { return "Start: " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Start checks the topics, then joins the group and runs in the background;
// see jobs.Server.Start.
func (s *Server) Start(ctx context.Context) error {
	return s.life.Start(ctx, s.cfg.StartTimeout, s.cfg.StartTimeoutCause, s.start)
}

func (s *Server) start(ctx context.Context) error {
	schedules, err := s.ensureTopics(ctx)
	if err != nil {
		return &StartError{err}
	}
	return s.life.Commit(func() error { return s.run(ctx, schedules) })
}

// run starts the member, and the dispatcher of schedules if any.
func (s *Server) run(ctx context.Context, schedules map[string]string) error {
	s.hooks = serverhooks.FromContext(ctx)
	var d *schedule.Dispatcher
	if len(schedules) > 0 {
		// The schedules partitions are the group's too: the one member
		// assigns, revokes and commits them beside the job partitions.
		d = s.newDispatcher(schedules)
		if err := s.records.RunBeside(d, d.Topics()); err != nil {
			return &StartError{fmt.Errorf("schedules topics: %w", err)}
		}
	}
	s.deadLetters.Start()
	if err := s.records.Start(ctx); err != nil {
		s.deadLetters.Stop()
		return err
	}
	s.status.Start()
	s.dispatcher.Store(d)
	go func() {
		select {
		case <-s.records.Ready():
		case <-s.records.Done():
			return
		}
		if d != nil {
			select {
			case <-d.Ready():
			case <-s.records.Done():
				return
			}
		}
		close(s.ready)
	}()
	go func() {
		<-s.records.Done()
		s.deadLetters.Stop()
		s.status.Stop()
	}()
	return nil
}

// ensureTopics checks the job topics, the dead-letter topic and the
// schedules topics, and creates the missing ones when told how. It returns
// the schedules topics to dispatch, each with its job topic.
func (s *Server) ensureTopics(ctx context.Context) (map[string]string, error) {
	cfg := s.cfg.Topics
	cfg.Admin = s.admin
	exist, err := topics.Ensure(ctx, cfg)
	if err != nil {
		return nil, err
	}
	schedules := make(map[string]string, len(exist))
	for _, st := range exist {
		schedules[st] = s.cfg.Targets[st]
	}
	return schedules, nil
}

// newDispatcher returns the dispatcher of the schedules topics targets, each
// mapped to the job topic it feeds; it writes with the server's producer,
// and builds its dead letters as the dead-letter writer does.
func (s *Server) newDispatcher(targets map[string]string) *schedule.Dispatcher {
	w := &enqueue.Writer{Producer: s.dlq, Chain: s.cfg.EnqueueChain}
	cfg := s.cfg.Schedule
	cfg.Targets, cfg.Producer, cfg.Admin = targets, s.dlq, s.admin
	cfg.Metrics = scheduleMetrics{s.cfg.Metrics, s.cfg.Executor.Workers}
	cfg.DeadLetter = func(r *kafka.Record, reason string) kafka.Message {
		return s.deadLetters.Message(r, 0, string(r.Header(envelope.HeaderKind)), reason)
	}
	cfg.Enqueue = func(ctx context.Context, runs []schedule.PeriodicRun) error {
		drafts := make([]enqueue.Draft, len(runs))
		for i, r := range runs {
			drafts[i] = r.(enqueue.Draft)
		}
		_, err := w.Produce(ctx, drafts)
		return err
	}
	return schedule.New(cfg)
}

// Ready is closed once the member has started its first assignment and the
// dispatcher, if any, has read its first.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Done is closed when the server has stopped, after Stop or by itself.
func (s *Server) Done() <-chan struct{} { return s.records.Done() }

// Err is why the server stopped by itself, once Done is closed.
func (s *Server) Err() error { return s.records.Err() }

// Leave makes the coming Stop leave the group, static member or not.
func (s *Server) Leave() { s.records.Leave() }

// Stop stops the member (see run.Member.Stop, whose error it returns, ctx's
// bare), then the dead letters and the status reports. Close follows it.
func (s *Server) Stop(ctx context.Context) error {
	s.life.Stop()
	err := s.records.Stop(ctx)
	s.deadLetters.Stop()
	s.status.Stop()
	return err
}

// Close releases what Stop left: the metrics stop reading the server, and
// its producer closes.
func (s *Server) Close() error {
	s.cfg.Metrics.Detach((*stats)(s))
	return s.dlq.Close()
}

// Stats returns a snapshot of the partitions the server holds.
func (s *Server) Stats() []actors.PartitionStats { return s.records.Runtime().Stats() }

// Schedules returns a snapshot of the schedules partitions the server
// dispatches; nil when it dispatches none.
func (s *Server) Schedules() []schedule.Stats {
	d := s.dispatcher.Load()
	if d == nil {
		return nil
	}
	return d.Stats()
}

// Rebalances returns how many assignments the server received.
func (s *Server) Rebalances() int64 { return s.records.Generations() }

// stats is what the status reports and the metrics read of a server.
type stats Server

func (s *stats) Group() string                  { return s.cfg.Consumer.Group }
func (s *stats) Rebalances() int64              { return s.records.Generations() }
func (s *stats) Stats() []actors.PartitionStats { return s.records.Runtime().Stats() }

func (s *stats) Schedules() []metrics.Schedule {
	var out []metrics.Schedule
	for _, p := range (*Server)(s).Schedules() {
		out = append(out, metrics.Schedule{Topic: p.Topic, Partition: p.Partition, Pending: p.Pending})
	}
	return out
}

// deadLetterCounter counts a server's dead letters in its metrics and its
// status reports.
type deadLetterCounter struct {
	metrics *metrics.Set
	workers *executor.Registry
	tally   *status.Tally // nil when the status reports are off
}

func (c deadLetterCounter) Written(kind string) {
	c.metrics.JobDeadLettered(metricKind(c.workers, kind))
	c.tally.DeadLettered(kind)
}

func (c deadLetterCounter) WriteFailed() { c.metrics.DeadLetterWriteFailed() }
func (c deadLetterCounter) Dropped()     { c.metrics.DeadLetterDropped() }

// scheduleMetrics counts the dispatcher's work in the metrics.
type scheduleMetrics struct {
	m       *metrics.Set
	workers *executor.Registry
}

func (s scheduleMetrics) Dispatched(target string, late time.Duration) {
	s.m.JobDispatched(target, late)
}
func (s scheduleMetrics) PeriodicFired(name string) { s.m.PeriodicFired(name) }
func (s scheduleMetrics) DeadLettered(r *kafka.Record) {
	s.m.JobDeadLettered(metricKind(s.workers, string(r.Header(envelope.HeaderKind))))
}

// metricKind is kind when it has a worker, else "unknown", so that bad
// input cannot grow the series without bound.
func metricKind(ws *executor.Registry, kind string) string {
	if executor.Lookup(ws, kind) == nil {
		return "unknown"
	}
	return kind
}
