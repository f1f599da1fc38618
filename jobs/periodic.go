package jobs

import (
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/internal/validate"
)

// A periodic job is fired by one server of the group: the one that
// dispatches partition 0 of the first topic's schedules topic (Config.Topics[0]
// + DefaultScheduleSuffix), so that it moves, with that partition, to another
// server when its owner stops or dies. For each tick the owner enqueues the
// job to its topic, with a job id derived from (name, tick), then records in
// that partition how far it has fired: a compacted record keyed
// "ordo-periodic/<name>" whose value is the time up to which every tick was
// fired. A new owner reads it before it fires, and fires every tick after
// it: a tick fired and not yet recorded when its owner died is fired again,
// with the same job id (at least once); none is skipped.

// HeaderPeriodicTick is set on the jobs a periodic job enqueues: the tick
// (RFC 3339 with nanoseconds, UTC) that fired it.
const HeaderPeriodicTick = "ordo-periodic-tick"

// MinPeriodicInterval is the shortest interval of "@every".
const MinPeriodicInterval = time.Second

// MissedTicks says what a periodic job does about ticks missed while no
// server ran (see PeriodicMissedTicks).
type MissedTicks int

const (
	// MissedRunOnce fires one run for all the ticks missed, with the job
	// id of the first of them.
	MissedRunOnce MissedTicks = iota
	// MissedSkip fires none of them.
	MissedSkip
)

// PeriodicJob is a job enqueued on a schedule by the servers of a group;
// build it with Periodic and register it in Config.Periodic.
type PeriodicJob struct {
	spec   string
	args   JobArgs
	name   string
	opts   enqueue.Options // of each run
	missed MissedTicks

	sched schedule.Spec // set by validate
	topic string        // the job's topic, set by validate
}

// PeriodicName names a periodic job: its job ids and its record of the
// ticks fired derive from the name. Default: the args' kind. Two periodic
// jobs of a server need different names. For Periodic only: an enqueue call
// refuses it.
func PeriodicName(name string) EnqueueOption {
	return func(o *enqueue.Options) { o.Periodic.Name, o.Periodic.NameSet = name, true }
}

// PeriodicMissedTicks says what the job does about ticks missed while no
// server ran, as opposed to ticks missed during a failover, which are
// always each fired: the ticks older than Config.SessionTimeout +
// Config.RebalanceTimeout when a server takes the job over (the longest a
// failover leaves it without an owner). Default MissedRunOnce. For Periodic
// only: an enqueue call refuses it.
func PeriodicMissedTicks(m MissedTicks) EnqueueOption {
	return func(o *enqueue.Options) { o.Periodic.Missed, o.Periodic.MissedSet = int(m), true }
}

// Periodic returns a job to enqueue on a schedule; register it in
// Config.Periodic. spec is cron syntax (five fields, or six with seconds
// first, or a descriptor such as "@hourly", in UTC unless it begins
// "CRON_TZ=<zone> ") or an interval, "@every <duration>" (at least
// MinPeriodicInterval; ticks are multiples of it since the Unix epoch).
// opts are PeriodicName, PeriodicMissedTicks and any other EnqueueOption
// but WithRunAt and WithDelay, which applies to each job it enqueues.
// Mistakes in spec, args or opts fail NewServer naming the job.
//
//	jobs.Periodic("0 * * * *", RebuildReportArgs{}) // every hour, on the hour
//	jobs.Periodic("@every 30s", PollArgs{Feed: "news"}, jobs.PeriodicName("poll-news"), jobs.WithKey("news"))
func Periodic(spec string, args JobArgs, opts ...EnqueueOption) PeriodicJob {
	o := enqueue.Collect(opts)
	p := PeriodicJob{spec: spec, args: args, name: o.Periodic.Name, missed: MissedTicks(o.Periodic.Missed)}
	o.Periodic = enqueue.Periodic{} // the job's, not its runs'
	p.opts = o
	return p
}

// Name is the job's name (PeriodicName, or the kind of its args).
func (p PeriodicJob) Name() string { return p.name }

// validatePeriodic checks the periodic jobs and fills in their names,
// schedules and topics; defaultTopic is Config.Topics[0].
func validatePeriodic(ps []PeriodicJob, defaultTopic string) error {
	names := map[string]int{}
	for i := range ps {
		p := &ps[i]
		var err error
		if p.name, p.sched, p.topic, err = enqueue.CheckPeriodic(p.spec, p.args, p.name, int(p.missed), &p.opts, defaultTopic, MinPeriodicInterval, names); err != nil {
			return &validate.ElementError{Index: i, Err: err}
		}
		names[p.name] = i
	}
	return nil
}

// job builds the job's run for tick.
func (p *PeriodicJob) job(tick, now time.Time) (enqueue.Draft, error) {
	return enqueue.PeriodicDraft(p.topic, p.args, p.opts, p.name, HeaderPeriodicTick, tick, now)
}
