package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// Config configures a Server. Zero values take the defaults noted; mistakes
// fail NewServer with an error naming the setting.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string
	// Security secures the connections to Kafka (TLS, SASL) of the
	// consumer and the dead-letter producer. Default nil: plaintext.
	Security *kafka.Security
	// Group is the consumer group id; processes with the same group share
	// the topics' partitions. Required.
	Group string
	// Topics to consume jobs from. Required.
	Topics []string
	// Workers run the jobs by kind. Required.
	Workers *Workers

	// Concurrency is how many jobs run at once in the process. Default 100.
	Concurrency int
	// VirtualKey computes a record's virtual-partition key from its key and
	// headers. Default: the message key, so jobs enqueued with the same key
	// run one at a time in order.
	VirtualKey actors.VirtualKeyFunc
	// MaxVirtualPartitions, when positive, caps the virtual partitions per
	// partition (Karafka's max_partitions). Default 0: one per key.
	MaxVirtualPartitions int
	// MaxBuffered bounds jobs fetched and not finished per partition.
	// Default 1000.
	MaxBuffered int
	// IdleTimeout passivates a key's actor after this long idle. Default 30 s.
	IdleTimeout time.Duration

	// MaxAttempts is how many runs a job gets before it is dead-lettered,
	// unless its worker says otherwise. Default supervision.DefaultMaxAttempts (4).
	MaxAttempts int
	// Backoff is the wait between retries unless the worker says
	// otherwise. Default 1 s doubling to 30 s.
	Backoff supervision.Backoff
	// DeadLetterTopic receives jobs that exhausted their attempts, failed
	// permanently, do not decode, or have no worker. Default: the first
	// topic with ".dlq" appended.
	DeadLetterTopic string

	// LongRunningTopics are topics whose every job runs in long-running
	// mode (see Worker.LongRunning).
	LongRunningTopics []string
	// LongRunningGrace is how long a long-running job goes on after its
	// partition was revoked before its context is cancelled. Default 5 s.
	LongRunningGrace time.Duration

	// CommitInterval is the longest a finished job waits to be committed.
	// Default 1 s.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long Stop waits for running jobs before
	// cancelling their contexts. Default 30 s.
	ShutdownTimeout time.Duration
	// SessionTimeout, RebalanceTimeout and HeartbeatInterval tune group
	// membership. Defaults 10 s, 30 s, 1 s.
	SessionTimeout, RebalanceTimeout, HeartbeatInterval time.Duration

	// Logger receives ordo's logs. Default slog.Default().
	Logger *slog.Logger
	// ActorSystem lets ordo live in a service's existing protoactor system.
	// Default: ordo creates its own.
	ActorSystem *actor.ActorSystem

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

func (c Config) validate() (Config, error) {
	switch {
	case len(c.Brokers) == 0:
		return c, errors.New("jobs: Config.Brokers is empty")
	case c.Group == "":
		return c, errors.New("jobs: Config.Group is empty")
	case len(c.Topics) == 0:
		return c, errors.New("jobs: Config.Topics is empty")
	case c.Workers == nil || len(c.Workers.byKind) == 0:
		return c, errors.New("jobs: Config.Workers has no worker")
	case c.MaxAttempts < 0:
		return c, fmt.Errorf("jobs: Config.MaxAttempts is negative (%d)", c.MaxAttempts)
	}
	if err := c.Backoff.Validate(); err != nil {
		return c, fmt.Errorf("jobs: Config.Backoff: %w", err)
	}
	for _, t := range c.LongRunningTopics {
		if !slices.Contains(c.Topics, t) {
			return c, fmt.Errorf("jobs: Config.LongRunningTopics names %q, which is not in Config.Topics", t)
		}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = supervision.DefaultMaxAttempts
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topics[0] + ".dlq"
	}
	if slices.Contains(c.Topics, c.DeadLetterTopic) {
		return c, fmt.Errorf("jobs: Config.DeadLetterTopic %q is also in Config.Topics", c.DeadLetterTopic)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Server consumes jobs and runs them on their workers: one job at a time per
// key, in enqueue order; different keys concurrently. It retries failures
// with backoff, dead-letters what cannot succeed, and commits only jobs that
// finished.
type Server struct {
	cfg     Config
	records *RecordServer
	dlq     *kafka.Producer
	tracer  *jobTracer // nil when tracing is off
}

// NewServer validates cfg; it does not contact Kafka.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	s.dlq, err = kafka.NewProducer(kafka.ProducerConfig{Brokers: cfg.Brokers, Security: cfg.Security, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("jobs: dead-letter producer: %w", err)
	}
	s.records, err = NewRecordServer(RecordServerConfig{
		Consumer: kafka.ConsumerConfig{
			Brokers: cfg.Brokers, Security: cfg.Security, Group: cfg.Group, Topics: cfg.Topics,
			SessionTimeout: cfg.SessionTimeout, RebalanceTimeout: cfg.RebalanceTimeout,
			HeartbeatInterval: cfg.HeartbeatInterval, Logger: cfg.Logger,
		},
		Runtime: actors.Config{
			Handler:              s.handle,
			Concurrency:          cfg.Concurrency,
			MaxBuffered:          cfg.MaxBuffered,
			VirtualKey:           cfg.VirtualKey,
			MaxVirtualPartitions: cfg.MaxVirtualPartitions,
			IdleTimeout:          cfg.IdleTimeout,
			CommitInterval:       cfg.CommitInterval,
			ShutdownTimeout:      cfg.ShutdownTimeout,
			Retry:                s.retry,
			LongRunning:          s.longRunningFunc(),
			LongRunningGrace:     cfg.LongRunningGrace,
			KeyActorStrategy:     supervision.KeyActorStrategy(cfg.Logger),
			System:               cfg.ActorSystem,
			Logger:               cfg.Logger,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	s.tracer = newJobTracer(cfg.Propagator, cfg.TracerProvider)
	cfg.Metrics.attach(s)
	return s, nil
}

// Start joins the group and starts processing in the background.
func (s *Server) Start(ctx context.Context) error { return s.records.Start(ctx) }

// Stop stops fetching, lets running jobs finish (up to ShutdownTimeout, then
// cancels their contexts), commits and leaves the group. Past the timeout it
// returns an error wrapping actors.ErrShutdownTimeout that names the jobs
// left.
func (s *Server) Stop(ctx context.Context) error {
	err := s.records.Stop(ctx)
	return errors.Join(err, s.dlq.Close())
}

// Stats returns a snapshot of the partitions the server holds.
func (s *Server) Stats() []actors.PartitionStats { return s.records.Runtime().Stats() }

// Rebalances returns how many assignments the server received from its
// group: one for joining, then one per rebalance it took part in.
func (s *Server) Rebalances() int64 { return s.records.Generations() }

// retryError carries the wait a failed job asked for to the runtime's retry
// policy.
type retryError struct {
	delay time.Duration
	err   error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retry is the runtime's retry policy: the handler has already decided
// (retryError); anything else is a failed dead-letter write, retried until
// it succeeds, because dropping the job would lose it.
func (s *Server) retry(attempt int, err error) (time.Duration, bool) {
	var re *retryError
	if errors.As(err, &re) {
		return re.delay, true
	}
	return s.cfg.Backoff.Delay(attempt), true
}

// longRunningFunc returns nil when no topic or worker is long-running, so
// the per-job path does not look for the kind of every record.
func (s *Server) longRunningFunc() func(*kafka.Record) bool {
	if len(s.cfg.LongRunningTopics) > 0 {
		return s.longRunning
	}
	for _, w := range s.cfg.Workers.byKind {
		if w.longRunning() {
			return s.longRunning
		}
	}
	return nil
}

func (s *Server) longRunning(r *kafka.Record) bool {
	if slices.Contains(s.cfg.LongRunningTopics, r.Topic) {
		return true
	}
	w := s.cfg.Workers.byKind[string(header(r, HeaderKind))]
	return w != nil && w.longRunning()
}

// handle runs one attempt of the job in r.
func (s *Server) handle(ctx context.Context, r kafka.Record) error {
	attempt := actors.Attempt(ctx)
	kindHeader := header(&r, HeaderKind)
	if len(r.Value) == 0 {
		return s.deadLetter(ctx, &r, attempt, string(kindHeader), "empty value")
	}
	env, err := DecodeEnvelope(r.Value)
	if err != nil {
		return s.deadLetter(ctx, &r, attempt, string(kindHeader), err.Error())
	}
	// The kind header routes when present (bad input may disagree with its
	// value). Indexing with string(bytes) does not allocate, and the
	// worker's own kind string then serves logs, metrics and spans.
	var w registeredWorker
	if len(kindHeader) > 0 {
		w = s.cfg.Workers.byKind[string(kindHeader)]
	} else {
		w = s.cfg.Workers.lookup(env.Kind)
	}
	if w == nil {
		kind := env.Kind
		if len(kindHeader) > 0 {
			kind = string(kindHeader)
		}
		return s.deadLetter(ctx, &r, attempt, kind, fmt.Sprintf("no worker for kind %q", kind))
	}
	kind := w.kind()
	ctx, span := s.tracer.start(ctx, kind, env.ID, &r)
	began := s.cfg.Metrics.now()
	err = w.run(ctx, env, &r, attempt)
	s.cfg.Metrics.jobRan(kind, began, err)
	span.end(err)
	if err == nil {
		return nil
	}
	var pe *actors.PanicError
	if errors.As(err, &pe) {
		s.cfg.Logger.Error("ordo: job panicked", "kind", kind, "job_id", env.ID, "attempt", attempt,
			"panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
	maxAttempts := s.cfg.MaxAttempts
	if n := w.maxAttempts(); n > 0 {
		maxAttempts = n
	}
	backoff := s.cfg.Backoff
	if b := w.backoff(); b != (supervision.Backoff{}) {
		backoff = b
	}
	d := supervision.Decide(attempt, maxAttempts, err, backoff)
	if d.DeadLetter {
		return s.deadLetter(ctx, &r, attempt, kind, d.Reason)
	}
	s.cfg.Metrics.jobRetried(kind)
	s.cfg.Logger.Warn("ordo: job failed; will retry", "kind", kind, "job_id", env.ID,
		"topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
		"attempt", attempt, "max_attempts", maxAttempts, "retry_in", d.Delay, "err", err)
	return &retryError{delay: d.Delay, err: err}
}

// deadLetter writes the record to the dead-letter topic with the reason, and
// only then lets it count as finished. The write is retried with backoff
// until it succeeds or the partition is revoked; a job that could not be
// dead-lettered is not committed, so it is not lost.
func (s *Server) deadLetter(ctx context.Context, r *kafka.Record, attempt int, kind, reason string) error {
	msg := kafka.Message{
		Topic: s.cfg.DeadLetterTopic,
		Key:   r.Key,
		Value: r.Value,
		Headers: append(slices.Clip(r.Headers),
			kafka.Header{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
			kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(r.Partition))},
			kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kafka.Header{Key: HeaderSourceGroup, Value: []byte(s.cfg.Group)},
			kafka.Header{Key: HeaderSourceAttempts, Value: []byte(strconv.Itoa(attempt))},
			kafka.Header{Key: HeaderSourceKind, Value: []byte(kind)},
			kafka.Header{Key: HeaderError, Value: []byte(reason)},
		),
	}
	log := s.cfg.Logger.With("kind", kind, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
		"attempts", attempt, "dead_letter_topic", s.cfg.DeadLetterTopic, "reason", reason)
	revoked := actors.RevokedChan(ctx)
	for try := 1; ; try++ {
		err := s.dlq.Produce(ctx, msg)
		if err == nil {
			s.cfg.Metrics.jobDeadLettered(s.metricKind(kind))
			log.Error("ordo: job dead-lettered")
			return nil
		}
		wait := s.cfg.Backoff.Delay(try)
		log.Error("ordo: dead-letter write failed; retrying", "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-revoked:
			return fmt.Errorf("dead-letter write to %q: %w", s.cfg.DeadLetterTopic, err)
		case <-ctx.Done():
			return fmt.Errorf("dead-letter write to %q: %w", s.cfg.DeadLetterTopic, err)
		}
	}
}

// header returns the value of the first header named key, nil if none.
func header(r *kafka.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
