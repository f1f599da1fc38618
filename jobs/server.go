package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordo-go/ordo/internal/server"
	"github.com/ordo-go/ordo/internal/topics"
)

// Config configures a Server. Zero values take the defaults noted (the
// Default constants); mistakes fail NewServer with an error that wraps
// ErrInvalidConfig and names the setting.
type Config struct {
	// Brokers are the Kafka bootstrap addresses, each host:port ("[::1]:9092"
	// for IPv6); a port is required. Required.
	Brokers []string
	// Security secures the connections to Kafka (TLS, SASL) of the
	// consumer and the dead-letter producer. Default nil: plaintext.
	Security *Security
	// Group is the consumer group id; processes with the same group share
	// the topics' partitions. Required.
	Group string
	// Topics to consume jobs from. Required.
	Topics []string
	// Workers run the jobs by kind. Required.
	Workers *Workers
	// Middleware wraps every run of a job in the Work phase of each, the
	// first outermost, around the worker's own middleware (see
	// Middleware), and the periodic jobs the server enqueues in the
	// Enqueue phase. Register a middleware that also has an Enqueue phase
	// in ClientConfig.Middleware too. Default: none.
	Middleware []Middleware

	// Concurrency is how many jobs run at once in the process. Default
	// DefaultConcurrency.
	Concurrency int
	// VirtualKey computes a record's virtual-partition key from its key and
	// headers. Default: the message key, so jobs enqueued with the same key
	// run one at a time in order.
	VirtualKey VirtualKeyFunc
	// MaxVirtualPartitions, when positive, caps the virtual partitions per
	// partition (Karafka's max_partitions). Default 0: one per key.
	MaxVirtualPartitions int
	// MaxBuffered bounds the jobs held per partition: fetched and not
	// finished, waiting at their key or running. Jobs that finished and
	// only wait for a slower one below them to be committed do not count
	// (see MaxSpan). Besides them a partition holds at most the rest of
	// one fetch response (kafka.DefaultFetchMaxBytes, 1 MiB), undecoded,
	// while it waits for room (PartitionStats.Prefetched). Default
	// DefaultMaxBuffered.
	MaxBuffered int
	// MaxSpan bounds how far reading may run ahead of the oldest
	// unfinished job of a partition, in offsets. A long or stuck job stops
	// its partition's other keys only after this many. Default
	// DefaultMaxSpanFactor × MaxBuffered; never below MaxBuffered.
	MaxSpan int
	// IdleTimeout passivates a key's actor after this long idle, dropping
	// its KeyState. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxIdleKeys caps the idle key actors kept in the process; past it the
	// least recently used are passivated at once, so memory follows
	// MaxBuffered, Concurrency and this cap, never the number of distinct
	// keys. Default DefaultMaxIdleKeys.
	MaxIdleKeys int

	// MaxAttempts is how many runs a job gets before it is dead-lettered,
	// unless its worker says otherwise. Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff is the wait between retries unless the worker says
	// otherwise. Default DefaultBackoffInitial doubling to
	// DefaultBackoffMax.
	Backoff Backoff
	// DeadLetterTopic receives jobs that exhausted their attempts, failed
	// permanently, do not decode, or have no worker. Default: the first
	// topic + DefaultDeadLetterSuffix (".dlq").
	DeadLetterTopic string
	// CreateTopics, when set, makes Start create the topics that do not
	// exist yet (Topics, DeadLetterTopic and, unless SchedulesOff, each
	// topic's schedules topic, compacted) with these settings. Default
	// nil: Start fails with an error naming each missing topic, as a
	// production cluster should not grow topics by accident.
	CreateTopics *TopicSpec
	// Schedules says whether the server dispatches the jobs scheduled on
	// its topics (WithRunAt, WithDelay), which wait in each topic's
	// schedules topic (the topic + DefaultScheduleSuffix, compacted) until
	// due. Default SchedulesAuto: it dispatches for each topic whose
	// schedules topic exists when Start runs, and, when CreateTopics is
	// set, for every topic, Start creating the missing schedules topics
	// (compacted) with the others. SchedulesOn requires them (Start
	// creates the missing ones when CreateTopics is set, and fails with
	// ErrTopicsMissing otherwise); SchedulesOff dispatches none. The
	// schedules partitions are assigned in Group with the job partitions,
	// so the servers share the dispatching as they share the jobs.
	Schedules ScheduleMode
	// Periodic are jobs enqueued on a schedule (see Periodic), each tick
	// once by the group's servers, by the one that dispatches partition 0
	// of the first topic's schedules topic. Every server of a group should
	// register the same. They need Schedules on (not SchedulesOff); the
	// first topic's schedules topic must exist, or CreateTopics be set.
	Periodic []PeriodicJob
	// PartitionWatchInterval is how often the server looks for partitions
	// added to its topics; new ones are consumed within about this long.
	// Default DefaultPartitionWatchInterval.
	PartitionWatchInterval time.Duration

	// LongRunningTopics are topics whose every job runs in long-running
	// mode (see Worker.LongRunning).
	LongRunningTopics []string
	// LongRunningGrace is how long a long-running job goes on after its
	// partition was revoked before its context is cancelled. Default
	// DefaultLongRunningGrace.
	LongRunningGrace time.Duration

	// CommitInterval is the longest a finished job waits to be committed.
	// Default DefaultCommitInterval.
	CommitInterval time.Duration
	// StartTimeout bounds Start when the context given to it has no
	// deadline: how long Start waits for the brokers to answer, asking
	// again with Backoff and logging each failure, before it fails with an
	// error naming them (like the Java client's max.block.ms). Default
	// DefaultStartTimeout.
	StartTimeout time.Duration
	// ShutdownTimeout bounds how long Stop waits for running jobs before
	// cancelling their contexts. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Rebalance chooses how the group moves partitions between servers:
	// RebalanceEager (the default: every rebalance hands back every
	// partition) or RebalanceCooperative (only the partitions that move
	// are drained; the others keep running). Every server of a group must
	// use the same. See the README's "Scaling out".
	Rebalance RebalanceProtocol
	// InstanceID makes this server a static member of its group (Kafka's
	// group.instance.id): restarted within SessionTimeout with the same
	// InstanceID, it gets its partitions back and the other servers keep
	// theirs, with no rebalance; Stop does not leave the group (StopAndLeave
	// does). Pick a name that is unique among the live servers of the group
	// and stable across restarts of one, such as a StatefulSet pod name. A
	// second live server with the same InstanceID takes the partitions over,
	// and the first stops with ErrMembershipFailed (see Err). Default "": a
	// dynamic member, which leaves the group on Stop.
	InstanceID string
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval tune group
	// membership. Defaults DefaultSessionTimeout, DefaultRebalanceTimeout,
	// DefaultHeartbeatInterval.
	SessionTimeout, RebalanceTimeout, HeartbeatInterval time.Duration

	// Logger receives ordo's logs. Default slog.Default().
	Logger *slog.Logger
	// ActorSystem lets ordo live in a service's existing protoactor system.
	// Default: ordo creates its own.
	ActorSystem *actor.ActorSystem

	// StatusTopic is the compacted topic the server publishes its status
	// report to, for `ordo status` and the dashboard: group, member, host,
	// version, uptime, each assigned partition's offsets, lag and load,
	// counts and rates per kind, and its last errors (never job args or
	// credentials). With CreateTopics set, the first report creates the
	// topic when it is missing (one partition, compacted, with
	// CreateTopics' ReplicationFactor); without it ordo creates nothing,
	// logs once that the topic is missing, and publishes once it exists.
	// Default DefaultStatusTopic.
	StatusTopic string
	// StatusInterval is how often the report is published. Default
	// DefaultStatusInterval.
	StatusInterval time.Duration
	// DisableStatus turns the status reports off.
	DisableStatus bool

	// Metrics, when set, receives the server's Prometheus metrics (see
	// NewMetrics). Default: none.
	Metrics *Metrics
	// Propagator extracts the trace context that ClientConfig.Propagator
	// put in a job's headers, so Work's ctx carries the enqueuer's span
	// context. Default: none, unless TracerProvider is set, which implies
	// propagation.TraceContext.
	Propagator propagation.TextMapPropagator
	// TracerProvider, when set, starts a consumer span around each run of
	// a job, a child of the enqueuer's span. Default: no spans.
	TracerProvider trace.TracerProvider
}

// TopicSpec is how Start creates a missing topic (Config.CreateTopics).
type TopicSpec struct {
	// Partitions is the new topic's partition count. Required.
	Partitions int
	// ReplicationFactor is how many brokers keep each partition. Required.
	ReplicationFactor int
	// Configs are topic-level settings such as "retention.ms"; may be nil.
	Configs map[string]string
}

// ScheduleMode says whether a Server dispatches scheduled jobs
// (Config.Schedules).
type ScheduleMode int

const (
	// SchedulesAuto dispatches for each topic whose schedules topic exists
	// when Start runs. With Config.CreateTopics set, Start creates the
	// missing schedules topics as it creates the other topics, so it
	// dispatches for every topic: a server that creates its topics runs
	// the jobs its clients enqueue WithDelay or WithRunAt.
	SchedulesAuto ScheduleMode = iota
	// SchedulesOn dispatches for every topic; Start fails when a schedules
	// topic is missing and Config.CreateTopics is not set.
	SchedulesOn
	// SchedulesOff dispatches nothing.
	SchedulesOff
)

// Server consumes jobs and runs them on their workers: one job at a time per
// key, in enqueue order; different keys concurrently. It retries failures
// with backoff, dead-letters what cannot succeed, and commits only jobs that
// finished.
type Server struct{ s *server.Server }

// NewServer validates cfg; it does not contact Kafka.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	topicsCfg, targets := cfg.topicsConfig()
	s, err := server.New(server.Config{
		Producer: cfg.serverProducer(), Consumer: cfg.consumerConfig(), Runtime: cfg.runtimeConfig(),
		Executor: cfg.executorConfig(), DeadLetter: cfg.deadLetterConfig(), Status: cfg.statusConfig(),
		Topics: topicsCfg, Targets: targets, Schedule: cfg.scheduleConfig(), EnqueueChain: enqueueChain(cfg.Middleware),
		Metrics: cfg.Metrics.series(), ErrStopped: ErrServerStopped, ErrStarted: ErrServerStarted,
		StartTimeout: cfg.StartTimeout, StartTimeoutCause: fmt.Errorf("jobs.Config.StartTimeout (%v) passed: %w",
			cfg.StartTimeout, context.DeadlineExceeded),
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Server{s}, nil
}

var (
	// ErrServerStopped is returned by Start after Stop: a server runs once;
	// build a new one to run again.
	ErrServerStopped = errors.New("jobs: the server was stopped; a server starts once")
	// ErrServerStarted is returned by a second Start.
	ErrServerStarted = errors.New("jobs: the server is already started")
)

// ErrTopicsMissing is wrapped by Start's error when topics the server needs
// do not exist and Config.CreateTopics is not set.
var ErrTopicsMissing = errors.New("jobs: topics missing")

// Start checks that the topics exist on the broker (creating the missing ones
// when Config.CreateTopics says how), then joins the group and processes jobs
// in the background. A broker that cannot be reached or does not answer is
// asked again with Config.Backoff, each failure logged at WARN with the
// brokers and the cause, until ctx ends, or, when ctx has no deadline, until
// Config.StartTimeout has passed; Start then fails with an error naming the
// brokers that wraps the last failure and ctx's error (errors.Is matches
// context.DeadlineExceeded). A Stop meanwhile makes Start fail at once with
// ErrServerStopped. ctx bounds Start only: once Start has returned, the
// server runs until Stop, or until it stops by itself (see Done). A server
// starts once; Start after Stop fails with ErrServerStopped.
func (s *Server) Start(ctx context.Context) error {
	err := s.s.Start(ctx)
	var missing *topics.MissingError
	var failed *server.StartError
	switch {
	case errors.As(err, &missing):
		return fmt.Errorf("%w on the broker: %s (create them, or set Config.CreateTopics)", ErrTopicsMissing, strings.Join(missing.Topics, ", "))
	case errors.As(err, &failed):
		return fmt.Errorf("jobs: %w", err)
	}
	return err
}

// Ready is closed once the server has received its first assignment from
// the group and started running its partitions (possibly none, when the
// group has more members than partitions), and, when it dispatches
// scheduled jobs, once its dispatcher has read the schedules partitions it
// was first assigned: from then on Cancel gets an answer.
func (s *Server) Ready() <-chan struct{} { return s.s.Ready() }

// Done is closed when the server has stopped: after Stop, or by itself when
// the group refused it for good (Err says why).
func (s *Server) Done() <-chan struct{} { return s.s.Done() }

// Err is why the server stopped by itself, once Done is closed; nil while it
// runs and after Stop.
func (s *Server) Err() error { return s.s.Err() }

// StopAndLeave is Stop for a static member (Config.InstanceID) that is going
// away for good, as in a scale-down: it leaves the group, so its partitions
// move to the other servers at once rather than after SessionTimeout. For a
// dynamic member it is Stop.
func (s *Server) StopAndLeave(ctx context.Context) error {
	s.s.Leave()
	return s.Stop(ctx)
}

// Stop stops fetching, lets running jobs finish (up to ShutdownTimeout, then
// cancels their contexts), commits and leaves the group. Past the timeout it
// returns an error wrapping ErrShutdownTimeout that names the jobs
// left. A Stop during Start makes Start fail with ErrServerStopped; a Stop
// before Start releases the server, which then cannot start. Calling Stop
// again does nothing more.
func (s *Server) Stop(ctx context.Context) error {
	err := s.s.Stop(ctx)
	if err != nil && err == ctx.Err() {
		err = fmt.Errorf("jobs: stop: %w", err)
	}
	return errors.Join(err, s.s.Close())
}

// Stats returns a snapshot of the partitions the server holds.
func (s *Server) Stats() []PartitionStats {
	stats := s.s.Stats()
	out := make([]PartitionStats, len(stats))
	for i, st := range stats {
		out[i] = PartitionStats(st)
	}
	return out
}

// Schedules returns a snapshot of the schedules partitions the server
// dispatches: how many jobs wait in each and when the next is due. Empty
// when it dispatches none (see Config.Schedules).
func (s *Server) Schedules() []ScheduleStats {
	stats := s.s.Schedules()
	if stats == nil {
		return nil
	}
	out := make([]ScheduleStats, len(stats))
	for i, st := range stats {
		out[i] = ScheduleStats(st)
	}
	return out
}

// Rebalances returns how many assignments the server received from its
// group: one for joining, then one per rebalance round it took part in,
// whether or not the round changed its partitions. Under
// RebalanceCooperative a rebalance that moves partitions takes two rounds
// (the old owners give them up, then the new owners get them), so a join
// that takes partitions from running servers counts two on each of them,
// and a leave, whose partitions have no owner left to give them up, one.
func (s *Server) Rebalances() int64 { return s.s.Rebalances() }
