package jobs

import (
	"context"
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/schedule"
)

// A job enqueued to run later waits in its topic's schedules topic (the job
// topic + DefaultScheduleSuffix, compacted), keyed by its job id, until a
// Server's dispatcher sends it to its target topic when it is due, as the
// same record an immediate enqueue would have written; package
// internal/enqueue says how its record is built.

// DefaultScheduleSuffix names a topic's schedules topic: the job topic +
// this.
const DefaultScheduleSuffix = ".schedule"

// DefaultScheduleGroupSuffix named the consumer group in which servers
// dispatched scheduled jobs before the schedules partitions joined the
// server's own group: Config.Group + this. A schedules partition that has no
// committed offset in the server's group starts where that group left it.
const DefaultScheduleGroupSuffix = ".schedule"

// ScheduleStats is what Server.Schedules reports per schedules partition the
// server dispatches.
type ScheduleStats struct {
	Topic     string
	Partition int
	// Pending is how many jobs wait to be dispatched.
	Pending int
	// NextDue is when the earliest of them is due; zero when none is.
	NextDue time.Time
	// Reading is true until the dispatcher has read the partition up to
	// its end as of the assignment; it dispatches nothing until then.
	Reading bool
}

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

// WithRunAt makes the job run at t or later, rather than now. It waits in the
// schedules topic until a Server dispatches it to its topic (see
// Config.Schedules); from then on it is an ordinary job, in its key's order
// at the point it was dispatched, not where it was enqueued. A t that is not
// after the enqueue time enqueues the job to run now. A t more than
// MaxScheduleAhead away, or the zero time, fails the enqueue.
//
//	info, err := client.Enqueue(ctx, ReminderArgs{User: "u-1"}, jobs.WithRunAt(renewal.Add(-72*time.Hour)))
func WithRunAt(t time.Time) EnqueueOption {
	return func(o *enqueue.Options) {
		o.RunAt, o.RunAtSet = t, true
		o.Delay, o.DelaySet = 0, false
	}
}

// WithDelay makes the job run d after it is enqueued, or later: WithRunAt of
// the enqueue time + d. A d that is not positive enqueues the job to run now.
//
//	info, err := client.Enqueue(ctx, ReminderArgs{User: "u-1"}, jobs.WithDelay(24*time.Hour))
func WithDelay(d time.Duration) EnqueueOption {
	return func(o *enqueue.Options) {
		o.Delay, o.DelaySet = d, true
		o.RunAt, o.RunAtSet = time.Time{}, false
	}
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
	answer, err := c.e.Cancel(ctx, jobID, enqueue.Collect(opts))
	switch answer {
	case schedule.CancelOutcomeCancelled:
		return Cancelled, nil
	case schedule.CancelOutcomeNotPending:
		return CancelTooLate, nil
	}
	return CancelUnconfirmed, err
}
