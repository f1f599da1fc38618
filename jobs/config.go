package jobs

import (
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

// Limits that Config's settings are checked against. Kafka's brokers refuse
// session timeouts beyond group.max.session.timeout.ms (30 min by default)
// and the group protocol carries the rebalance timeout as int32
// milliseconds.
const (
	maxSessionTimeout   = 30 * time.Minute
	maxRebalanceTimeout = time.Duration(1<<31-1) * time.Millisecond
	maxConcurrency      = 1 << 20
)

// check is one setting's verdict, and elementError one element's of a list
// setting; validate reports the first failure.
type check struct {
	field string
	err   error
}

type elementError struct {
	index int
	err   error
}

func (e *elementError) Error() string { return fmt.Sprintf("[%d]: %v", e.index, e.err) }
func (e *elementError) Unwrap() error { return e.err }

func firstFailed(config string, checks []check) error {
	vs := make([]validate.Check, len(checks))
	for i, c := range checks {
		vs[i] = validate.Check{Field: c.field, Err: c.err}
		if el := (*elementError)(nil); errors.As(c.err, &el) {
			vs[i].Err = &validate.ElementError{Index: el.index, Err: el.err}
		}
	}
	return validate.FirstFailed(ErrInvalidConfig, config, vs)
}

func within[T int | time.Duration](v, lo, hi T) error { return validate.Within(v, lo, hi) }
func brokersError(brokers []string) error             { return validate.Brokers(brokers) }

// validate checks every setting once, here, in the order Config declares
// them, then the settings that depend on each other, and fills in the
// defaults. The layers below get settings they accept as given.
func (c Config) validate() (Config, error) {
	const unlimited = 1<<63 - 1
	c.Periodic = slices.Clone(c.Periodic) // validation fills in each job
	c.Middleware = slices.Clone(c.Middleware)
	checks := []check{
		{"Brokers", brokersError(c.Brokers)},
		{"Security", c.Security.Validate()},
		{"Group", validate.NonEmpty(c.Group, "give the consumer group id")},
		{"Topics", validate.Topics(c.Topics)},
		{"Workers", workersError(c.Workers)},
		{"Middleware", middlewareError(c.Middleware)},
		{"Concurrency", within(c.Concurrency, 1, maxConcurrency)},
		{"MaxVirtualPartitions", within(c.MaxVirtualPartitions, 1, unlimited)},
		{"MaxBuffered", within(c.MaxBuffered, 1, unlimited)},
		{"MaxSpan", within(c.MaxSpan, 1, unlimited)},
		{"IdleTimeout", within(c.IdleTimeout, time.Millisecond, unlimited)},
		{"MaxIdleKeys", within(c.MaxIdleKeys, 1, unlimited)},
		{"MaxAttempts", within(c.MaxAttempts, 1, unlimited)},
		{"Backoff", c.Backoff.Validate()},
		{"DeadLetterTopic", validate.OptionalTopic(c.DeadLetterTopic)},
		{"CreateTopics", c.CreateTopics.validate()},
		{"Schedules", scheduleModeError(c.Schedules)},
		{"Periodic", periodicError(c.Periodic, c.Topics, c.Workers)},
		{"PartitionWatchInterval", within(c.PartitionWatchInterval, 100*time.Millisecond, unlimited)},
		{"LongRunningGrace", within(c.LongRunningGrace, 0, unlimited)},
		{"CommitInterval", within(c.CommitInterval, time.Millisecond, unlimited)},
		{"StartTimeout", within(c.StartTimeout, time.Millisecond, unlimited)},
		{"ShutdownTimeout", within(c.ShutdownTimeout, 0, unlimited)},
		{"Rebalance", rebalanceError(c.Rebalance)},
		{"InstanceID", validate.OptionalInstanceID(c.InstanceID)},
		{"SessionTimeout", within(c.SessionTimeout, 100*time.Millisecond, maxSessionTimeout)},
		{"RebalanceTimeout", within(c.RebalanceTimeout, time.Millisecond, maxRebalanceTimeout)},
		{"HeartbeatInterval", within(c.HeartbeatInterval, time.Millisecond, maxSessionTimeout)},
		{"StatusTopic", validate.OptionalTopic(c.StatusTopic)},
		{"StatusInterval", within(c.StatusInterval, 100*time.Millisecond, unlimited)},
	}
	if err := firstFailed("jobs.Config", checks); err != nil {
		return c, err
	}

	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = DefaultMaxBuffered
	}
	if c.MaxSpan == 0 {
		c.MaxSpan = DefaultMaxSpanFactor * c.MaxBuffered
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topics[0] + DefaultDeadLetterSuffix
	}
	if c.StatusTopic == "" {
		c.StatusTopic = DefaultStatusTopic
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}

	var cross []check
	if c.MaxSpan < c.MaxBuffered {
		cross = append(cross, check{"MaxSpan", fmt.Errorf("(%d) must not be below MaxBuffered (%d)", c.MaxSpan, c.MaxBuffered)})
	}
	if c.Schedules != SchedulesOff {
		for _, t := range c.Topics {
			if st := t + DefaultScheduleSuffix; slices.Contains(c.Topics, st) || st == c.DeadLetterTopic {
				cross = append(cross, check{"Schedules", fmt.Errorf("the schedules topic of %q, %q, is also a job or dead-letter topic; set SchedulesOff or rename it", t, st)})
				break
			}
		}
	}
	if len(c.Periodic) > 0 && c.Schedules == SchedulesOff {
		cross = append(cross, check{"Periodic", errors.New("needs Schedules on: the periodic jobs are fired by the dispatcher of the first topic's schedules topic")})
	}
	if slices.Contains(c.Topics, c.DeadLetterTopic) {
		cross = append(cross, check{"DeadLetterTopic", fmt.Errorf("%q is also in Topics: dead letters would run again", c.DeadLetterTopic)})
	}
	if !c.DisableStatus && (slices.Contains(c.Topics, c.StatusTopic) || c.StatusTopic == c.DeadLetterTopic) {
		cross = append(cross, check{"StatusTopic", fmt.Errorf("%q is also a job or dead-letter topic", c.StatusTopic)})
	}
	for _, t := range c.LongRunningTopics {
		if !slices.Contains(c.Topics, t) {
			cross = append(cross, check{"LongRunningTopics", fmt.Errorf("names %q, which is not in Topics", t)})
			break
		}
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		cross = append(cross, check{"HeartbeatInterval", fmt.Errorf("(%v) must be below SessionTimeout (%v)", c.HeartbeatInterval, c.SessionTimeout)})
	}
	return c, firstFailed("jobs.Config", cross)
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
			return &elementError{i, fmt.Errorf("kind %q has no worker in Config.Workers, and its jobs go to %q, which this server consumes; register one with AddWorker", kind, p.topic)}
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
