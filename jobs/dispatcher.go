package jobs

import (
	"cmp"
	"context"
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/kafka"
)

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

// newDispatcher returns the dispatcher of the schedules topics targets, each
// mapped to the job topic it feeds; it writes with producer, and builds its
// dead letters as deadLetters does.
func newDispatcher(cfg Config, targets map[string]string, producer *kafka.Producer, deadLetters *deadLetterWriter) *schedule.Dispatcher {
	w := &enqueue.Writer{Producer: producer, Chain: enqueueChain(cfg.Middleware)}
	periodic := make([]schedule.PeriodicJob, len(cfg.Periodic))
	for i := range cfg.Periodic {
		p := &cfg.Periodic[i]
		periodic[i] = schedule.PeriodicJob{Name: p.name, Next: p.sched.Next, RunMissedOnce: p.missed == MissedRunOnce,
			Build: func(tick, now time.Time) (schedule.PeriodicRun, error) {
				d, err := p.job(tick, now)
				return d, err
			}}
	}
	return schedule.New(schedule.Config{
		Targets: targets, Group: cfg.Group, CommitInterval: cfg.CommitInterval, Backoff: cfg.Backoff,
		Producer: producer, Admin: cfg.admin(), Logger: cfg.Logger,
		Metrics:         scheduleMetrics{cfg.Metrics, cfg.Workers},
		DeadLetterTopic: cfg.DeadLetterTopic,
		DeadLetter: func(r *kafka.Record, reason string) kafka.Message {
			return deadLetters.Message(r, 0, string(r.Header(HeaderKind)), reason)
		},
		Periodic: periodic, PeriodicTopic: cfg.Topics[0] + DefaultScheduleSuffix,
		Failover: cfg.SessionTimeout + cmp.Or(cfg.RebalanceTimeout, DefaultRebalanceTimeout),
		Enqueue: func(ctx context.Context, runs []schedule.PeriodicRun) error {
			drafts := make([]enqueue.Draft, len(runs))
			for i, r := range runs {
				drafts[i] = r.(enqueue.Draft)
			}
			_, err := w.Produce(ctx, drafts)
			return err
		},
	})
}

// scheduleMetrics counts the dispatcher's work in Config.Metrics.
type scheduleMetrics struct {
	m       *Metrics
	workers *Workers
}

func (s scheduleMetrics) Dispatched(target string, late time.Duration) {
	s.m.jobDispatched(target, late)
}
func (s scheduleMetrics) PeriodicFired(name string) { s.m.periodicFired(name) }
func (s scheduleMetrics) DeadLettered(r *kafka.Record) {
	s.m.jobDeadLettered(metricKind(s.workers, string(r.Header(HeaderKind))))
}
