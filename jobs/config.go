package jobs

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/validate"
)

// ErrInvalidConfig is wrapped by every error NewServer and NewClient return
// for a configuration mistake. The message names the setting as written,
// such as jobs.Config.IdleTimeout.
var ErrInvalidConfig = errors.New("invalid configuration")

// The defaults of Config: a zero value takes these. They are spelled out
// here (go doc shows the numbers); TestDefaultsAreTheLayersDefaults keeps
// them equal to the defaults of the layers that apply them.
const (
	DefaultConcurrency            = 100
	DefaultMaxBuffered            = 1000
	DefaultMaxSpanFactor          = 100 // MaxSpan is this × MaxBuffered
	DefaultIdleTimeout            = 30 * time.Second
	DefaultMaxIdleKeys            = 10_000
	DefaultMaxAttempts            = 4
	DefaultBackoffInitial         = time.Second
	DefaultBackoffMax             = 30 * time.Second
	DefaultDeadLetterSuffix       = ".dlq" // DeadLetterTopic is the first topic + this
	DefaultLongRunningGrace       = 5 * time.Second
	DefaultCommitInterval         = time.Second
	DefaultShutdownTimeout        = 30 * time.Second
	DefaultStartTimeout           = time.Minute
	DefaultSessionTimeout         = 10 * time.Second
	DefaultRebalanceTimeout       = 30 * time.Second
	DefaultHeartbeatInterval      = time.Second
	DefaultPartitionWatchInterval = 5 * time.Second
)

// The defaults of the status reports (Config.StatusTopic,
// Config.StatusInterval).
const (
	DefaultStatusTopic    = "__ordo_status"
	DefaultStatusInterval = 5 * time.Second
)

// MaxReasonBytes is the most bytes of a job's error that a dead letter's
// HeaderError and a log line carry. A longer one keeps its start and ends in
// "… [cut: N bytes]", N its full length, the whole within MaxReasonBytes.
// 4 KiB holds any error a person reads whole, while headers count toward
// Kafka's message size (1 MB by default) and every log line carries it:
// uncut, a 1 MB error made its dead letter too large to write and logged
// 1 MB on every try.
const MaxReasonBytes = 4 << 10

// Limits that Config's settings are checked against. Kafka's brokers refuse
// session timeouts beyond group.max.session.timeout.ms (30 min by default)
// and the group protocol carries the rebalance timeout as int32
// milliseconds.
const (
	maxSessionTimeout   = 30 * time.Minute
	maxRebalanceTimeout = time.Duration(1<<31-1) * time.Millisecond
	maxConcurrency      = 1 << 20
)

// validate checks every setting once, here, in the order Config declares
// them, then the settings that depend on each other, and fills in the
// defaults. The layers below get settings they accept as given.
func (c Config) validate() (Config, error) {
	c.Periodic = slices.Clone(c.Periodic) // validation fills in each job
	c.Middleware = slices.Clone(c.Middleware)
	checks := []validate.Check{
		{Field: "Brokers", Err: validate.Brokers(c.Brokers)},
		{Field: "Security", Err: c.Security.Validate()},
		{Field: "Group", Err: validate.NonEmpty(c.Group, "give the consumer group id")},
		{Field: "Topics", Err: validate.Topics(c.Topics)},
		{Field: "Workers", Err: workersError(c.Workers)},
		{Field: "Middleware", Err: validate.NoneNil(c.Middleware)},
		{Field: "Concurrency", Err: validate.Within(c.Concurrency, 1, maxConcurrency)},
		{Field: "MaxVirtualPartitions", Err: validate.AtLeast(c.MaxVirtualPartitions, 1)},
		{Field: "MaxBuffered", Err: validate.AtLeast(c.MaxBuffered, 1)},
		{Field: "MaxSpan", Err: validate.AtLeast(c.MaxSpan, 1)},
		{Field: "IdleTimeout", Err: validate.AtLeast(c.IdleTimeout, time.Millisecond)},
		{Field: "MaxIdleKeys", Err: validate.AtLeast(c.MaxIdleKeys, 1)},
		{Field: "MaxAttempts", Err: validate.AtLeast(c.MaxAttempts, 1)},
		{Field: "Backoff", Err: c.Backoff.Validate()},
		{Field: "DeadLetterTopic", Err: validate.OptionalTopic(c.DeadLetterTopic)},
		{Field: "CreateTopics", Err: c.CreateTopics.validate()},
		{Field: "Schedules", Err: scheduleModeError(c.Schedules)},
		{Field: "Periodic", Err: periodicError(c.Periodic, c.Topics, c.Workers)},
		{Field: "PartitionWatchInterval", Err: validate.AtLeast(c.PartitionWatchInterval, 100*time.Millisecond)},
		{Field: "LongRunningGrace", Err: validate.AtLeast(c.LongRunningGrace, 0)},
		{Field: "CommitInterval", Err: validate.AtLeast(c.CommitInterval, time.Millisecond)},
		{Field: "StartTimeout", Err: validate.AtLeast(c.StartTimeout, time.Millisecond)},
		{Field: "ShutdownTimeout", Err: validate.AtLeast(c.ShutdownTimeout, 0)},
		{Field: "Rebalance", Err: rebalanceError(c.Rebalance)},
		{Field: "InstanceID", Err: validate.OptionalInstanceID(c.InstanceID)},
		{Field: "SessionTimeout", Err: validate.Within(c.SessionTimeout, 100*time.Millisecond, maxSessionTimeout)},
		{Field: "RebalanceTimeout", Err: validate.Within(c.RebalanceTimeout, time.Millisecond, maxRebalanceTimeout)},
		{Field: "HeartbeatInterval", Err: validate.Within(c.HeartbeatInterval, time.Millisecond, maxSessionTimeout)},
		{Field: "StatusTopic", Err: validate.OptionalTopic(c.StatusTopic)},
		{Field: "StatusInterval", Err: validate.AtLeast(c.StatusInterval, 100*time.Millisecond)},
	}
	if err := validate.FirstFailed(ErrInvalidConfig, "jobs.Config", checks); err != nil {
		return c, err
	}

	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.MaxBuffered = cmp.Or(c.MaxBuffered, DefaultMaxBuffered)
	c.MaxSpan = cmp.Or(c.MaxSpan, DefaultMaxSpanFactor*c.MaxBuffered)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.DeadLetterTopic = cmp.Or(c.DeadLetterTopic, c.Topics[0]+DefaultDeadLetterSuffix)
	c.StatusTopic = cmp.Or(c.StatusTopic, DefaultStatusTopic)
	c.StatusInterval = cmp.Or(c.StatusInterval, DefaultStatusInterval)
	c.SessionTimeout = cmp.Or(c.SessionTimeout, DefaultSessionTimeout)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.StartTimeout = cmp.Or(c.StartTimeout, DefaultStartTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	var cross []validate.Check
	failed := func(field string, err error) { cross = append(cross, validate.Check{Field: field, Err: err}) }
	if c.MaxSpan < c.MaxBuffered {
		failed("MaxSpan", fmt.Errorf("(%d) must not be below MaxBuffered (%d)", c.MaxSpan, c.MaxBuffered))
	}
	if c.Schedules != SchedulesOff {
		for _, t := range c.Topics {
			if st := t + DefaultScheduleSuffix; slices.Contains(c.Topics, st) || st == c.DeadLetterTopic {
				failed("Schedules", fmt.Errorf("the schedules topic of %q, %q, is also a job or dead-letter topic; set SchedulesOff or rename it", t, st))
				break
			}
		}
	}
	if len(c.Periodic) > 0 && c.Schedules == SchedulesOff {
		failed("Periodic", errors.New("needs Schedules on: the periodic jobs are fired by the dispatcher of the first topic's schedules topic"))
	}
	if slices.Contains(c.Topics, c.DeadLetterTopic) {
		failed("DeadLetterTopic", fmt.Errorf("%q is also in Topics: dead letters would run again", c.DeadLetterTopic))
	}
	if !c.DisableStatus && (slices.Contains(c.Topics, c.StatusTopic) || c.StatusTopic == c.DeadLetterTopic) {
		failed("StatusTopic", fmt.Errorf("%q is also a job or dead-letter topic", c.StatusTopic))
	}
	for _, t := range c.LongRunningTopics {
		if !slices.Contains(c.Topics, t) {
			failed("LongRunningTopics", fmt.Errorf("names %q, which is not in Topics", t))
			break
		}
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		failed("HeartbeatInterval", fmt.Errorf("(%v) must be below SessionTimeout (%v)", c.HeartbeatInterval, c.SessionTimeout))
	}
	return c, validate.FirstFailed(ErrInvalidConfig, "jobs.Config", cross)
}

func rebalanceError(r RebalanceProtocol) error {
	if r != RebalanceEager && r != RebalanceCooperative {
		return fmt.Errorf("is %d; want RebalanceEager or RebalanceCooperative", r)
	}
	return nil
}

func scheduleModeError(m ScheduleMode) error {
	if m < SchedulesAuto || m > SchedulesOff {
		return fmt.Errorf("is %d; want SchedulesAuto, SchedulesOn or SchedulesOff", m)
	}
	return nil
}

// periodicError checks the periodic jobs; they go to the first topic
// unless WithTopic says otherwise. A job sent to a topic this server
// consumes needs a worker here: it would be dead-lettered on every tick.
// One sent elsewhere is worked by the servers of that topic.
func periodicError(ps []PeriodicJob, topics []string, ws *Workers) error {
	if len(ps) == 0 || len(topics) == 0 || workersError(ws) != nil { // Topics or Workers says so
		return nil
	}
	if err := validatePeriodic(ps, topics[0]); err != nil {
		return err
	}
	for i, p := range ps {
		if kind := p.args.Kind(); slices.Contains(topics, p.topic) && executor.Lookup(ws, kind) == nil {
			return &validate.ElementError{Index: i, Err: fmt.Errorf("kind %q has no worker in Config.Workers, and its jobs go to %q, which this server consumes; register one with AddWorker", kind, p.topic)}
		}
	}
	return nil
}

func workersError(ws *Workers) error {
	if ws == nil || len(executor.Kinds(ws)) == 0 {
		return errors.New("has no worker; register them with AddWorker")
	}
	return nil
}

func (t *TopicSpec) validate() error {
	if t == nil {
		return nil
	}
	return validate.TopicSpec(t.Partitions, t.ReplicationFactor)
}
