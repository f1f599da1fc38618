package schedule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/ordo-go/ordo/internal/backoff"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/kafka"
)

// Header names of schedule records. The exported ones of package jobs
// (jobs.HeaderRunAt, jobs.HeaderTargetTopic, jobs.HeaderTargetKey,
// jobs.HeaderPartitionKey) are spelled there too,
// as users read them; TestInternalPackagesSpellJobsNamesAlike (jobs) keeps the two
// alike.
const (
	HeaderRunAt        = "ordo-run-at"
	HeaderTargetTopic  = "ordo-target-topic"
	HeaderTargetKey    = "ordo-target-key"
	HeaderPartitionKey = "ordo-partition-key"

	// HeaderCancel marks a tombstone written by Cancel, which the
	// dispatcher answers.
	HeaderCancel = "ordo-cancel"
	// HeaderCancelOutcome and HeaderCancelOffset mark the dispatcher's
	// answer to the cancel at that offset: a tombstone too.
	HeaderCancelOutcome = "ordo-cancel-outcome"
	HeaderCancelOffset  = "ordo-cancel-offset"
	// HeaderDispatched marks the dispatcher's tombstone of a job it
	// resolved, saying where the job went.
	HeaderDispatched = "ordo-dispatched"
	// HeaderPeriodic marks a record of how far a periodic job has fired.
	HeaderPeriodic = "ordo-periodic"
)

// The values of HeaderCancelOutcome.
const (
	CancelOutcomeCancelled  = "cancelled"
	CancelOutcomeNotPending = "not-pending"
)

// CancelAnswer reads the schedules partition after the cancel at d, with a
// reader configured by rc, until the dispatcher's answer to it, or until ctx
// ends. It returns the answer's HeaderCancelOutcome, "" when none came.
func CancelAnswer(ctx context.Context, rc kafka.ReaderConfig, d kafka.Delivery, jobID string) string {
	r, err := kafka.NewPartitionReader(rc, d.Topic, d.Partition, d.Offset+1)
	if err != nil {
		return ""
	}
	defer r.Close()
	ref := strconv.FormatInt(d.Offset, 10)
	var buf []kafka.Record
	for failures := 0; ctx.Err() == nil; {
		recs, _, err := r.Fetch(ctx, buf[:0], 500)
		if err != nil {
			// ctx ended, or a broker hiccup: the loop's condition
			// decides, after a wait, so a broker that refuses the
			// connection is not asked in a busy loop.
			failures++
			select {
			case <-time.After(backoff.Delay(50*time.Millisecond, time.Second, failures)):
			case <-ctx.Done():
			}
			continue
		}
		failures = 0
		for _, rec := range recs {
			if string(rec.Key) != jobID || string(rec.Header(HeaderCancelOffset)) != ref {
				continue
			}
			switch o := string(rec.Header(HeaderCancelOutcome)); o {
			case CancelOutcomeCancelled, CancelOutcomeNotPending:
				return o
			}
		}
		buf = recs
	}
	return ""
}

// periodicKeyPrefix begins the key of a periodic job's record; the name
// follows.
const periodicKeyPrefix = "ordo-periodic/"

// MaxAhead is how far ahead a job may be scheduled (jobs.MaxScheduleAhead).
// A schedule record whose run-at is further ahead of when it was written is
// dead-lettered, as it is beyond what is meant (a time in the wrong unit,
// say).
const MaxAhead = 366 * 24 * time.Hour

// maxBehind is how long before its record was written a run-at may lie; a
// run-at further in the past is a producer's mistake and is dead-lettered
// rather than run at once.
const maxBehind = 24 * time.Hour

// readRunAt reads a schedule record's run-at, and refuses one too far before or
// after the record was written.
func readRunAt(r *kafka.Record) (time.Time, error) {
	at := r.Header(HeaderRunAt)
	if at == nil {
		return time.Time{}, fmt.Errorf("schedule record without the %s header", HeaderRunAt)
	}
	runAt, err := time.Parse(time.RFC3339Nano, string(at))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time", HeaderRunAt, at)
	}
	if !r.Time.IsZero() {
		switch {
		case runAt.Before(r.Time.Add(-maxBehind)):
			return time.Time{}, fmt.Errorf("%s %s is more than %v before the record was written (%s)",
				HeaderRunAt, at, maxBehind, r.Time.UTC().Format(time.RFC3339))
		case runAt.After(r.Time.Add(MaxAhead)):
			return time.Time{}, fmt.Errorf("%s %s is more than MaxScheduleAhead (%v) after the record was written (%s)",
				HeaderRunAt, at, MaxAhead, r.Time.UTC().Format(time.RFC3339))
		}
	}
	return runAt, nil
}

// dispatchable is a schedule record read back and checked: the job record to
// send to its target topic, and when it was due.
type dispatchable struct {
	msg   kafka.Message
	runAt time.Time
}

// readSchedule checks a schedule record of the schedules topic of target and
// returns the job record to dispatch, or why it cannot be dispatched.
func readSchedule(r *kafka.Record, target string) (dispatchable, error) {
	if len(r.Key) == 0 {
		return dispatchable{}, errors.New("schedule record without a key (the job id)")
	}
	due, err := readRunAt(r)
	if err != nil {
		return dispatchable{}, err
	}
	if t := string(r.Header(HeaderTargetTopic)); t != target {
		return dispatchable{}, fmt.Errorf("%s is %q; this schedules topic dispatches to %q only", HeaderTargetTopic, t, target)
	}
	var v envelope.View
	if err := envelope.DecodeView(r.Value, &v); err != nil {
		return dispatchable{}, err
	}
	if string(v.ID) != string(r.Key) {
		return dispatchable{}, fmt.Errorf("the record's key %q is not its job id %q", r.Key, v.ID)
	}
	msg := kafka.Message{Topic: target, Value: r.Value, Headers: make([]kafka.Header, 0, len(r.Headers))}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderRunAt, HeaderTargetTopic:
		case HeaderTargetKey:
			msg.Key = h.Value
		case HeaderPartitionKey:
			msg.PartitionKey = h.Value
			msg.Headers = append(msg.Headers, h)
		default:
			msg.Headers = append(msg.Headers, h)
		}
	}
	return dispatchable{msg: msg, runAt: due}, nil
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
