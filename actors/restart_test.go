package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// A key actor restarted after its handler panicked waits the configured
// RestartBackoff, asked with the record's attempt, before the record runs
// again (it waited a hard-coded 1 s doubling to 30 s before).
func TestARestartedKeyWaitsTheConfiguredBackoff(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []int
	rt := newTestRuntime(t, Config{
		RestartBackoff: func(attempt int) time.Duration {
			mu.Lock()
			asked = append(asked, attempt)
			mu.Unlock()
			return time.Millisecond
		},
		Handler: func(ctx context.Context, r *kafka.Record, attempt int) Outcome {
			if r.Offset == 1 && attempt < 3 {
				panic("boom")
			}
			return Done()
		},
	})
	gen := newMemGeneration()
	assign(t, rt, gen, newMemSource("t", 0, []string{"a", "a", "a"}))
	kafkatest.WaitFor(t, 10*time.Second, "every record to finish", func() bool { return gen.committed(0) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] != 1 || asked[1] != 2 {
		t.Fatalf("RestartBackoff was asked for attempts %v; want [1 2], one per restart", asked)
	}
}
