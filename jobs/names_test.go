package jobs_test

import (
	"testing"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/jobs"
)

// The record format is spelled twice: in package jobs, where users read the
// header names, and in the internal packages that write and read records,
// which cannot import jobs. A record one writes must be one the other
// reads.
func TestInternalPackagesSpellJobsNamesAlike(t *testing.T) {
	for _, c := range []struct{ name, internal, jobs string }{
		{"envelope.HeaderKind", envelope.HeaderKind, jobs.HeaderKind},
		{"envelope.HeaderJobID", envelope.HeaderJobID, jobs.HeaderJobID},
		{"executor.HeaderReplayOf", executor.HeaderReplayOf, jobs.HeaderReplayOf},
		{"enqueue.HeaderPeriodicTick", enqueue.HeaderPeriodicTick, jobs.HeaderPeriodicTick},
		{"enqueue.ScheduleSuffix", enqueue.ScheduleSuffix, jobs.DefaultScheduleSuffix},
		{"schedule.HeaderRunAt", schedule.HeaderRunAt, jobs.HeaderRunAt},
		{"schedule.HeaderTargetTopic", schedule.HeaderTargetTopic, jobs.HeaderTargetTopic},
		{"schedule.HeaderTargetKey", schedule.HeaderTargetKey, jobs.HeaderTargetKey},
		{"schedule.HeaderPartitionKey", schedule.HeaderPartitionKey, jobs.HeaderPartitionKey},
		{"schedule.FormerGroupSuffix", schedule.FormerGroupSuffix, jobs.DefaultScheduleGroupSuffix},
	} {
		if c.internal != c.jobs {
			t.Errorf("%s = %q, jobs' = %q", c.name, c.internal, c.jobs)
		}
	}
	if schedule.MaxAhead != jobs.MaxScheduleAhead {
		t.Errorf("schedule.MaxAhead = %v, jobs.MaxScheduleAhead = %v", schedule.MaxAhead, jobs.MaxScheduleAhead)
	}
}
