package jobs

import (
	"cmp"
	"log/slog"
	"slices"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/deadletter"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/internal/topics"
	"github.com/ordo-go/ordo/internal/tracing"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// Each lower-layer config a Server runs on is built from Config here, in
// one function each, so that a setting reaches every part that uses it.

// producerConfig is a producer's connection to brokers, which the server's
// and the client's producers share.
func producerConfig(brokers []string, sec *Security, log *slog.Logger) kafka.ProducerConfig {
	return kafka.ProducerConfig{Brokers: brokers, Security: sec, Logger: log}
}

// serverProducer is the server's one producer, of dead letters, dispatched
// scheduled jobs, periodic jobs and status reports. The dead-letter writer
// batches on its own, and every dead letter holds its key until
// acknowledged: a batch need not wait for more. Its users retry with a
// back-off and log each failure, so a missing topic is waited for only
// briefly (a topic created a moment ago) and then reported.
func (c Config) serverProducer() kafka.ProducerConfig {
	p := producerConfig(c.Brokers, c.Security, c.Logger)
	p.BatchTimeout, p.UnknownTopicWait = 100*time.Microsecond, time.Second
	return p
}

// consumerConfig is the server's group membership.
func (c Config) consumerConfig() kafka.ConsumerConfig {
	return kafka.ConsumerConfig{
		Brokers: c.Brokers, Security: c.Security, Group: c.Group, Topics: c.Topics, InstanceID: c.InstanceID,
		Rebalance:      c.Rebalance,
		SessionTimeout: c.SessionTimeout, RebalanceTimeout: c.RebalanceTimeout,
		HeartbeatInterval: c.HeartbeatInterval, PartitionWatchInterval: c.PartitionWatchInterval,
		Logger: c.Logger,
	}
}

// runtimeConfig is the actor runtime the server's jobs run on, but for the
// handlers, which the executor gives, and the hooks, which Start's context
// gives.
func (c Config) runtimeConfig() actors.Config {
	return actors.Config{
		Concurrency:          c.Concurrency,
		MaxBuffered:          c.MaxBuffered,
		MaxSpan:              c.MaxSpan,
		VirtualKey:           c.VirtualKey,
		MaxVirtualPartitions: c.MaxVirtualPartitions,
		IdleTimeout:          c.IdleTimeout,
		MaxIdleKeys:          c.MaxIdleKeys,
		CommitInterval:       c.CommitInterval,
		ShutdownTimeout:      c.ShutdownTimeout,
		LongRunning:          c.longRunningFunc(),
		LongRunningGrace:     c.LongRunningGrace,
		KeyActorStrategy:     supervision.KeyActorStrategy(c.Logger),
		RestartBackoff:       c.Backoff.Delay,
		System:               c.ActorSystem,
		Logger:               c.Logger,
	}
}

// executorConfig is how the server runs a job, but for the tally and the
// dead-letter writer, which the server owns.
func (c Config) executorConfig() executor.Config {
	return executor.Config{
		Workers:        c.Workers,
		MaxAttempts:    c.MaxAttempts,
		Backoff:        c.Backoff,
		Metrics:        c.Metrics.series(),
		Tracer:         tracing.New(c.Propagator, c.TracerProvider),
		Log:            c.Logger,
		Middleware:     workMiddleware(c.Middleware, c.Workers),
		MaxReasonBytes: MaxReasonBytes,
	}
}

// deadLetterConfig is the server's writer of dead letters, with the headers
// users read, but for its producer and counter.
func (c Config) deadLetterConfig() deadletter.Config {
	return deadletter.Config{Topic: c.DeadLetterTopic, Group: c.Group, Backoff: c.Backoff, Log: c.Logger,
		MaxReasonBytes: MaxReasonBytes, Headers: deadletter.Headers{
			SourceTopic: HeaderSourceTopic, SourcePartition: HeaderSourcePartition, SourceOffset: HeaderSourceOffset,
			SourceGroup: HeaderSourceGroup, SourceAttempts: HeaderSourceAttempts, SourceKind: HeaderSourceKind,
			Error: HeaderError, ArgsDropped: HeaderArgsDropped,
		}}
}

// statusConfig is the server's status reports, but for what the server
// gives them; nil when DisableStatus.
func (c Config) statusConfig() *status.ReporterConfig {
	if c.DisableStatus {
		return nil
	}
	rf, create := 1, c.CreateTopics != nil
	if create {
		rf = c.CreateTopics.ReplicationFactor
	}
	return &status.ReporterConfig{
		Log: c.Logger, Topic: c.StatusTopic, Interval: c.StatusInterval, Create: create, ReplicationFactor: rf,
		Group: c.Group, InstanceID: c.InstanceID, Topics: c.Topics, DeadLetterTopic: c.DeadLetterTopic,
	}
}

// scheduleConfig is the dispatcher of scheduled jobs and the firer of
// periodic ones, but for what the server gives it when Start has found the
// schedules topics.
func (c Config) scheduleConfig() schedule.Config {
	periodic := make([]schedule.PeriodicJob, len(c.Periodic))
	for i := range c.Periodic {
		p := &c.Periodic[i]
		periodic[i] = schedule.PeriodicJob{Name: p.name, Next: p.sched.Next, RunMissedOnce: p.missed == MissedRunOnce,
			Build: func(tick, now time.Time) (schedule.PeriodicRun, error) {
				d, err := p.job(tick, now)
				return d, err
			}}
	}
	return schedule.Config{
		Group: c.Group, CommitInterval: c.CommitInterval, Backoff: c.Backoff, Logger: c.Logger,
		DeadLetterTopic: c.DeadLetterTopic,
		Periodic:        periodic, PeriodicTopic: c.Topics[0] + DefaultScheduleSuffix,
		Failover: c.SessionTimeout + cmp.Or(c.RebalanceTimeout, DefaultRebalanceTimeout),
	}
}

// topicsConfig is what Start checks, but for the admin the server gives:
// the job topics, the dead-letter topic and, unless SchedulesOff, each
// topic's schedules topic, which it maps to its job topic.
func (c Config) topicsConfig() (topics.Config, map[string]string) {
	cfg := topics.Config{Brokers: c.Brokers, Need: append(slices.Clone(c.Topics), c.DeadLetterTopic),
		Backoff: c.Backoff, Logger: c.Logger}
	targets := map[string]string{}
	if c.Schedules != SchedulesOff {
		for _, t := range c.Topics {
			st := t + DefaultScheduleSuffix
			targets[st] = t
			cfg.Schedules = append(cfg.Schedules, st)
			// A server that creates its topics creates their schedules
			// topics too: a client's WithDelay writes there.
			if c.Schedules == SchedulesOn || c.CreateTopics != nil || (len(c.Periodic) > 0 && t == c.Topics[0]) {
				cfg.Need = append(cfg.Need, st)
			}
		}
	}
	if spec := c.CreateTopics; spec != nil {
		cfg.Create = &topics.Spec{Partitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor, Configs: spec.Configs}
	}
	return cfg, targets
}

// longRunningFunc returns nil when no topic or worker is long-running, so
// the per-job path does not look for the kind of every record.
func (c Config) longRunningFunc() func(*kafka.Record) bool {
	if len(c.LongRunningTopics) > 0 {
		return c.longRunning
	}
	for _, kind := range executor.Kinds(c.Workers) {
		if executor.Lookup(c.Workers, kind).LongRunning() {
			return c.longRunning
		}
	}
	return nil
}

func (c Config) longRunning(r *kafka.Record) bool {
	if slices.Contains(c.LongRunningTopics, r.Topic) {
		return true
	}
	w := executor.WorkerOf(c.Workers, r)
	return w != nil && w.LongRunning()
}
