package schedule_test

import (
	"testing"

	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/jobs"
)

// The schedules topics' format is spelled twice: here, where records are
// read, and in package jobs, where users read the header names. A record
// one writes must be one the other reads.
func TestScheduleHeadersMatchTheJobsPackage(t *testing.T) {
	for _, c := range []struct{ name, here, jobs string }{
		{"HeaderRunAt", schedule.HeaderRunAt, jobs.HeaderRunAt},
		{"HeaderTargetTopic", schedule.HeaderTargetTopic, jobs.HeaderTargetTopic},
		{"HeaderTargetKey", schedule.HeaderTargetKey, jobs.HeaderTargetKey},
		{"HeaderPartitionKey", schedule.HeaderPartitionKey, jobs.HeaderPartitionKey},
		{"FormerGroupSuffix", schedule.FormerGroupSuffix, jobs.DefaultScheduleGroupSuffix},
	} {
		if c.here != c.jobs {
			t.Errorf("schedule.%s = %q, jobs.%s = %q", c.name, c.here, c.name, c.jobs)
		}
	}
	if schedule.MaxAhead != jobs.MaxScheduleAhead {
		t.Errorf("schedule.MaxAhead = %v, jobs.MaxScheduleAhead = %v", schedule.MaxAhead, jobs.MaxScheduleAhead)
	}
}
