package executor_test

import (
	"testing"

	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/jobs"
)

func TestExecutorHeadersMatchTheJobsPackage(t *testing.T) {
	for _, c := range []struct{ name, here, jobs string }{
		{"HeaderKind", executor.HeaderKind, jobs.HeaderKind},
		{"HeaderJobID", executor.HeaderJobID, jobs.HeaderJobID},
		{"HeaderReplayOf", executor.HeaderReplayOf, jobs.HeaderReplayOf},
	} {
		if c.here != c.jobs {
			t.Errorf("executor.%s = %q, jobs.%s = %q", c.name, c.here, c.name, c.jobs)
		}
	}
}
