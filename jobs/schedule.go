package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/kafka"
)

// A job enqueued to run later is written to its topic's schedules topic
// (the job topic + DefaultScheduleSuffix, compacted) rather than to the
// topic itself. Its record there is the job's record as an immediate
// enqueue would write it (the same envelope and headers) with three
// differences: its key is the job id, so that a tombstone can cancel it and
// compaction drops it once dispatched; the job's own key moves to the
// HeaderTargetKey header; and HeaderRunAt and HeaderTargetTopic say when and
// where it goes. A Server's dispatcher sends it to its target topic when it
// is due, as the same record an immediate enqueue would have written.
//
// The job ids of scheduled jobs with a key (or partition key) are chosen so
// that the id hashes (murmur2, like any record key) to the schedules
// partition the job's key hashes to: every scheduled job of one key then
// waits in one schedules partition, in enqueue order, and the job id alone
// still finds it there for Cancel.

// DefaultScheduleSuffix names a topic's schedules topic: the job topic +
// this.
const DefaultScheduleSuffix = ".schedule"

// MaxScheduleAhead is how far ahead a job may be scheduled. A schedule record
// whose run-at is further ahead of when it was written is dead-lettered, as
// it is beyond what is meant (a time in the wrong unit, say).
const MaxScheduleAhead = 366 * 24 * time.Hour

// Header names of schedule records.
const (
	// HeaderRunAt is when a scheduled job is due, in RFC 3339 with
	// nanoseconds, UTC.
	HeaderRunAt = "ordo-run-at"
	// HeaderTargetTopic is the topic a scheduled job is dispatched to.
	HeaderTargetTopic = "ordo-target-topic"
	// HeaderTargetKey is the record key a scheduled job is dispatched
	// with; absent for a job without one.
	HeaderTargetKey = "ordo-target-key"
)

// reservedHeader tells the header names ordo sets, which WithHeaders
// refuses.
func reservedHeader(name string) bool {
	switch name {
	case HeaderKind, HeaderJobID, HeaderPartitionKey, HeaderRunAt, HeaderTargetTopic, HeaderTargetKey,
		schedule.HeaderCancel, schedule.HeaderCancelOutcome, schedule.HeaderCancelOffset, schedule.HeaderDispatched,
		HeaderPeriodicTick, schedule.HeaderPeriodic:
		return true
	}
	return false
}

// WithRunAt makes the job run at t or later, rather than now. It waits in the
// schedules topic until a Server dispatches it to its topic (see
// Config.Schedules); from then on it is an ordinary job, in its key's order
// at the point it was dispatched, not where it was enqueued. A t that is not
// after the enqueue time enqueues the job to run now. A t more than
// MaxScheduleAhead away, or the zero time, fails the enqueue.
//
//	info, err := client.Enqueue(ctx, ReminderArgs{User: "u-1"}, jobs.WithRunAt(renewal.Add(-72*time.Hour)))
func WithRunAt(t time.Time) EnqueueOption {
	return func(o *enqueueOptions) {
		o.runAt, o.runAtSet = t, true
		o.delay, o.delaySet = 0, false
	}
}

// WithDelay makes the job run d after it is enqueued, or later: WithRunAt of
// the enqueue time + d. A d that is not positive enqueues the job to run now.
//
//	info, err := client.Enqueue(ctx, ReminderArgs{User: "u-1"}, jobs.WithDelay(24*time.Hour))
func WithDelay(d time.Duration) EnqueueOption {
	return func(o *enqueueOptions) {
		o.delay, o.delaySet = d, true
		o.runAt, o.runAtSet = time.Time{}, false
	}
}

// when says when the job is due and whether it is scheduled at all.
func (o *enqueueOptions) when(now time.Time) (runAt time.Time, scheduled bool, err error) {
	switch {
	case o.delaySet:
		runAt = now.Add(o.delay)
	case o.runAtSet:
		if o.runAt.IsZero() {
			return time.Time{}, false, errors.New("WithRunAt: the time is zero")
		}
		runAt = o.runAt.UTC()
	default:
		return time.Time{}, false, nil
	}
	if !runAt.After(now) {
		return time.Time{}, false, nil
	}
	if runAt.Sub(now) > MaxScheduleAhead {
		return time.Time{}, false, fmt.Errorf("run-at %s is more than MaxScheduleAhead (%v) away", runAt.Format(time.RFC3339), MaxScheduleAhead)
	}
	return runAt, true, nil
}

// scheduleRecord turns the job's record into its schedule record.
func scheduleRecord(job kafka.Message, id string, runAt time.Time) kafka.Message {
	headers := slices.Grow(job.Headers, 3)
	headers = append(headers,
		kafka.Header{Key: HeaderRunAt, Value: []byte(runAt.Format(time.RFC3339Nano))},
		kafka.Header{Key: HeaderTargetTopic, Value: []byte(job.Topic)})
	if job.Key != nil {
		headers = append(headers, kafka.Header{Key: HeaderTargetKey, Value: job.Key})
	}
	return kafka.Message{Topic: job.Topic + DefaultScheduleSuffix, Key: []byte(id), Value: job.Value, Headers: headers}
}

// scheduleID returns a job id for a job scheduled on topic that hashes to the
// schedules partition its key (or partition key) hashes to. About n ids are
// drawn for n partitions: microseconds.
func scheduleID(now time.Time, topic, key, partitionKey string, partitions func(string) (int, error)) (string, error) {
	id := envelope.NewID(now)
	order := key
	if order == "" {
		order = partitionKey
	}
	if order == "" || partitions == nil {
		return id, nil
	}
	n, err := partitions(topic + DefaultScheduleSuffix)
	if err != nil {
		return "", err
	}
	want := kafka.Murmur2Partition([]byte(order), n)
	for kafka.Murmur2Partition([]byte(id), n) != want {
		id = envelope.NewID(now)
	}
	return id, nil
}

// scheduleLookupError is a failure to learn a schedules topic's partitions:
// not a mistake of the call.
type scheduleLookupError struct{ err error }

func (e *scheduleLookupError) Error() string { return e.err.Error() }
func (e *scheduleLookupError) Unwrap() error { return e.err }

// enqueueError wraps prepare's error: in ErrInvalidEnqueue unless the
// broker, not the call, is the cause.
func enqueueError(err error, where string) error {
	if le := (*scheduleLookupError)(nil); errors.As(err, &le) {
		return fmt.Errorf("jobs: enqueue %s%w", where, le.err)
	}
	return fmt.Errorf("%w: %s%w", ErrInvalidEnqueue, where, err)
}

// schedulePartitions reads the partition counts of schedules topics, which
// the ids of scheduled jobs are drawn against, from the client's producer:
// the counts its partitioner hashes over, kept fresh by its metadata, and a
// topic created a moment ago is waited for as a write to it would be.
type schedulePartitions struct {
	producer *kafka.Producer
}

func newSchedulePartitions(producer *kafka.Producer) *schedulePartitions {
	return &schedulePartitions{producer: producer}
}

// lookup returns a function for prepare that reads a schedules topic's
// partition count under ctx.
func (s *schedulePartitions) lookup(ctx context.Context) func(topic string) (int, error) {
	return func(topic string) (int, error) { return s.partitions(ctx, topic) }
}

func (s *schedulePartitions) partitions(ctx context.Context, topic string) (int, error) {
	n, err := s.producer.Partitions(ctx, topic)
	if errors.Is(err, ErrUnknownTopic) {
		return 0, fmt.Errorf("%w (a Server with Config.CreateTopics set and Schedules not SchedulesOff creates the schedules topic): %w",
			ErrTopicsMissing, err)
	}
	return n, err
}

// CancelOutcome says what Cancel achieved.
type CancelOutcome int

const (
	// CancelUnconfirmed: the cancel was written, and no dispatcher answered
	// within the wait (none is running, or it is catching up after a
	// failover). The job will not run if the dispatcher reads the cancel
	// before the job is due; it may run if it was dispatched already.
	CancelUnconfirmed CancelOutcome = iota
	// Cancelled: the job was pending and is removed; it will not run.
	Cancelled
	// CancelTooLate: the job was not pending when the dispatcher read the
	// cancel: it was dispatched already (or cancelled before, or never
	// scheduled on this topic). A dispatched job runs.
	CancelTooLate
)

func (o CancelOutcome) String() string {
	switch o {
	case Cancelled:
		return "cancelled"
	case CancelTooLate:
		return "too late"
	default:
		return "unconfirmed"
	}
}

// DefaultCancelWait is how long Cancel waits for the dispatcher's answer
// when ctx has no earlier deadline.
const DefaultCancelWait = 10 * time.Second

// Cancel cancels a job enqueued with WithRunAt or WithDelay, by its id
// (JobInfo.ID): it writes a tombstone for the job to the schedules topic and
// waits for the dispatcher to answer whether the job was still pending
// (Cancelled) or not (CancelTooLate), up to ctx's deadline or
// DefaultCancelWait, whichever is first. Without an answer it returns
// CancelUnconfirmed and no error: the tombstone is written and takes effect
// if the dispatcher reads it before the job is due. The job's topic is
// ClientConfig.Topic unless opts holds WithTopic; no other option applies.
//
//	outcome, err := client.Cancel(ctx, info.ID)
//	if err == nil && outcome == jobs.CancelTooLate {
//		// the job was dispatched: it runs
//	}
func (c *Client) Cancel(ctx context.Context, jobID string, opts ...EnqueueOption) (CancelOutcome, error) {
	if !c.enter() {
		return CancelUnconfirmed, ErrClientClosed
	}
	defer c.calls.Done()
	o := collectOptions(opts)
	topic := c.topic
	if o.topicSet {
		topic = o.topic
	}
	switch {
	case jobID == "":
		return CancelUnconfirmed, fmt.Errorf("%w: Cancel: the job id is empty", ErrInvalidEnqueue)
	case o.keySet || o.partitionKeySet || o.headers != nil || o.metadata != nil || o.runAtSet || o.delaySet:
		return CancelUnconfirmed, fmt.Errorf("%w: Cancel takes WithTopic only", ErrInvalidEnqueue)
	case topic == "":
		return CancelUnconfirmed, fmt.Errorf("%w: Cancel: no topic: set ClientConfig.Topic or pass WithTopic", ErrInvalidEnqueue)
	}
	if err := kafka.CheckTopicName(topic); err != nil {
		return CancelUnconfirmed, fmt.Errorf("%w: Cancel: WithTopic: %w", ErrInvalidEnqueue, err)
	}
	ds, err := c.producer.ProduceSync(ctx, kafka.Message{Topic: topic + DefaultScheduleSuffix, Key: []byte(jobID),
		Headers: []kafka.Header{{Key: schedule.HeaderCancel, Value: []byte("1")}}})
	if err != nil {
		return CancelUnconfirmed, fmt.Errorf("jobs: cancel job %s: %w", jobID, err)
	}
	wait, cancel := context.WithTimeout(ctx, DefaultCancelWait)
	defer cancel()
	return c.cancelAnswer(wait, ds[0], jobID), nil
}

// cancelAnswer waits for the dispatcher's answer to the cancel at d, until
// ctx ends.
func (c *Client) cancelAnswer(ctx context.Context, d kafka.Delivery, jobID string) CancelOutcome {
	rc := kafka.ReaderConfig{Brokers: c.brokers, Security: c.security, FetchMaxWait: 100 * time.Millisecond, Logger: c.logger}
	switch schedule.CancelAnswer(ctx, rc, d, jobID) {
	case schedule.CancelOutcomeCancelled:
		return Cancelled
	case schedule.CancelOutcomeNotPending:
		return CancelTooLate
	}
	return CancelUnconfirmed
}
