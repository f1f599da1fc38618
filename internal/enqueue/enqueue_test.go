package enqueue_test

import (
	"testing"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/jobs"
)

func TestNamesMatchTheJobsPackage(t *testing.T) {
	for _, c := range []struct{ name, here, jobs string }{
		{"HeaderKind", enqueue.HeaderKind, jobs.HeaderKind},
		{"HeaderJobID", enqueue.HeaderJobID, jobs.HeaderJobID},
		{"HeaderPeriodicTick", enqueue.HeaderPeriodicTick, jobs.HeaderPeriodicTick},
		{"ScheduleSuffix", enqueue.ScheduleSuffix, jobs.DefaultScheduleSuffix},
	} {
		if c.here != c.jobs {
			t.Errorf("enqueue.%s = %q, jobs' = %q", c.name, c.here, c.jobs)
		}
	}
}
