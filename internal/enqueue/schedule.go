package enqueue

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
// (the job topic + ScheduleSuffix, compacted) rather than to the topic
// itself. Its record there is the job's record as an immediate enqueue would
// write it (the same envelope and headers) with three differences: its key
// is the job id, so that a tombstone can cancel it and compaction drops it
// once dispatched; the job's own key moves to the HeaderTargetKey header;
// and HeaderRunAt and HeaderTargetTopic say when and where it goes. A
// Server's dispatcher sends it to its target topic when it is due, as the
// same record an immediate enqueue would have written.
//
// The job ids of scheduled jobs with a key (or partition key) are chosen so
// that the id hashes (murmur2, like any record key) to the schedules
// partition the job's key hashes to: every scheduled job of one key then
// waits in one schedules partition, in enqueue order, and the job id alone
// still finds it there for Cancel.

// when says when the job is due and whether it is scheduled at all.
func (o *Options) when(now time.Time) (runAt time.Time, scheduled bool, err error) {
	switch {
	case o.DelaySet:
		runAt = now.Add(o.Delay)
	case o.RunAtSet:
		if o.RunAt.IsZero() {
			return time.Time{}, false, errors.New("WithRunAt: the time is zero")
		}
		runAt = o.RunAt.UTC()
	default:
		return time.Time{}, false, nil
	}
	if !runAt.After(now) {
		return time.Time{}, false, nil
	}
	if runAt.Sub(now) > schedule.MaxAhead {
		return time.Time{}, false, fmt.Errorf("run-at %s is more than MaxScheduleAhead (%v) away", runAt.Format(time.RFC3339), schedule.MaxAhead)
	}
	return runAt, true, nil
}

// scheduleRecord turns the job's record into its schedule record.
func scheduleRecord(job kafka.Message, id string, runAt time.Time) kafka.Message {
	headers := slices.Grow(job.Headers, 3)
	headers = append(headers,
		kafka.Header{Key: schedule.HeaderRunAt, Value: []byte(runAt.Format(time.RFC3339Nano))},
		kafka.Header{Key: schedule.HeaderTargetTopic, Value: []byte(job.Topic)})
	if job.Key != nil {
		headers = append(headers, kafka.Header{Key: schedule.HeaderTargetKey, Value: job.Key})
	}
	return kafka.Message{Topic: job.Topic + ScheduleSuffix, Key: []byte(id), Value: job.Value, Headers: headers}
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
	n, err := partitions(topic + ScheduleSuffix)
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

// callError wraps NewDraft's error: in ErrInvalid unless the broker, not the
// call, is the cause. where prefixes the call's error, e.g. "params[2]: ".
func callError(err error, where string) error {
	if le := (*scheduleLookupError)(nil); errors.As(err, &le) {
		return fmt.Errorf("jobs: enqueue %s%w", where, le.err)
	}
	return fmt.Errorf("%w: %s%w", ErrInvalid, where, err)
}

// schedulePartitions reads the partition counts of schedules topics, which
// the ids of scheduled jobs are drawn against, from the client's producer:
// the counts its partitioner hashes over, kept fresh by its metadata, and a
// topic created a moment ago is waited for as a write to it would be.
type schedulePartitions struct {
	producer *kafka.Producer
	// missing is jobs.ErrTopicsMissing, which the error of a schedules
	// topic the brokers do not list wraps.
	missing error
}

// lookup returns a function for NewDraft that reads a schedules topic's
// partition count under ctx.
func (s *schedulePartitions) lookup(ctx context.Context) func(topic string) (int, error) {
	return func(topic string) (int, error) { return s.partitions(ctx, topic) }
}

func (s *schedulePartitions) partitions(ctx context.Context, topic string) (int, error) {
	n, err := s.producer.Partitions(ctx, topic)
	if errors.Is(err, kafka.ErrUnknownTopic) {
		return 0, fmt.Errorf("%w (a Server with Config.CreateTopics set and Schedules not SchedulesOff creates the schedules topic): %w",
			s.missing, err)
	}
	return n, err
}
