package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
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

// headerPeriodic marks a record of how far a periodic job has fired.
const headerPeriodic = "ordo-periodic"

// periodicKeyPrefix begins the key of a periodic job's record; the name
// follows.
const periodicKeyPrefix = "ordo-periodic/"

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
	opts   []EnqueueOption
	missed MissedTicks

	sched cron.Schedule // set by validate
	topic string        // the job's topic, set by validate
}

// PeriodicOption changes a periodic job: PeriodicName, PeriodicMissedTicks,
// or any EnqueueOption but WithRunAt and WithDelay, which applies to each job
// it enqueues.
type PeriodicOption interface {
	applyPeriodic(*PeriodicJob)
}

func (o EnqueueOption) applyPeriodic(p *PeriodicJob) { p.opts = append(p.opts, o) }

type periodicOption func(*PeriodicJob)

func (o periodicOption) applyPeriodic(p *PeriodicJob) { o(p) }

// PeriodicName names a periodic job: its job ids and its record of the
// ticks fired derive from the name. Default: the args' kind. Two periodic
// jobs of a server need different names.
func PeriodicName(name string) PeriodicOption {
	return periodicOption(func(p *PeriodicJob) { p.name = name })
}

// PeriodicMissedTicks says what the job does about ticks missed while no
// server ran, as opposed to ticks missed during a failover, which are
// always each fired: the ticks older than Config.SessionTimeout +
// Config.RebalanceTimeout when a server takes the job over (the longest a
// failover leaves it without an owner). Default MissedRunOnce.
func PeriodicMissedTicks(m MissedTicks) PeriodicOption {
	return periodicOption(func(p *PeriodicJob) { p.missed = m })
}

// Periodic returns a job to enqueue on a schedule; register it in
// Config.Periodic. spec is cron syntax (five fields, or six with seconds
// first, or a descriptor such as "@hourly", in UTC unless it begins
// "CRON_TZ=<zone> ") or an interval, "@every <duration>" (at least
// MinPeriodicInterval; ticks are multiples of it since the Unix epoch).
// Mistakes in spec, args or opts fail NewServer naming the job.
//
//	jobs.Periodic("0 * * * *", RebuildReportArgs{}) // every hour, on the hour
//	jobs.Periodic("@every 30s", PollArgs{Feed: "news"}, jobs.PeriodicName("poll-news"), jobs.WithKey("news"))
func Periodic(spec string, args JobArgs, opts ...PeriodicOption) PeriodicJob {
	p := PeriodicJob{spec: spec, args: args}
	for _, o := range opts {
		if o != nil {
			o.applyPeriodic(&p)
		}
	}
	return p
}

// Name is the job's name (PeriodicName, or the kind of its args).
func (p PeriodicJob) Name() string { return p.name }

// everySchedule ticks at the multiples of d since the Unix epoch, so every
// server computes the same ticks.
type everySchedule struct{ d time.Duration }

func (e everySchedule) Next(t time.Time) time.Time {
	n := t.UnixNano()
	next := n - n%int64(e.d) + int64(e.d)
	if n < 0 && n%int64(e.d) != 0 {
		next -= int64(e.d)
	}
	return time.Unix(0, next).UTC()
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func parsePeriodicSpec(spec string) (cron.Schedule, error) {
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("spec %q: %w", spec, err)
		}
		if d < MinPeriodicInterval {
			return nil, fmt.Errorf("spec %q: the interval must be at least %v", spec, MinPeriodicInterval)
		}
		return everySchedule{d}, nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("spec %q: %w", spec, err)
	}
	return s, nil
}

// validatePeriodic checks the periodic jobs and fills in their names,
// schedules and topics; defaultTopic is Config.Topics[0].
func validatePeriodic(ps []PeriodicJob, defaultTopic string) error {
	names := map[string]int{}
	for i := range ps {
		p := &ps[i]
		if isNil(p.args) {
			return &elementError{i, errors.New("args are nil")}
		}
		if p.name == "" {
			p.name = p.args.Kind()
		}
		if p.name == "" {
			return &elementError{i, fmt.Errorf("%T.Kind() is empty and PeriodicName is not given", p.args)}
		}
		if j, ok := names[p.name]; ok {
			return &elementError{i, fmt.Errorf("the name %q is also [%d]'s; give one a PeriodicName", p.name, j)}
		}
		names[p.name] = i
		if p.missed != MissedRunOnce && p.missed != MissedSkip {
			return &elementError{i, fmt.Errorf("PeriodicMissedTicks(%d): want MissedRunOnce or MissedSkip", p.missed)}
		}
		var err error
		if p.sched, err = parsePeriodicSpec(p.spec); err != nil {
			return &elementError{i, err}
		}
		if o := collectOptions(p.opts); o.runAtSet || o.delaySet {
			return &elementError{i, errors.New("WithRunAt and WithDelay do not apply: the spec says when it runs")}
		}
		msg, _, err := prepare(defaultTopic, p.args, p.opts, time.Now(), nil)
		if err != nil {
			return &elementError{i, err}
		}
		p.topic = msg.Topic
	}
	return nil
}

// periodicState is how far one periodic job has fired, as its owner knows
// it.
type periodicState struct {
	// through is the time up to which every tick was fired (or, for
	// MissedSkip, let go).
	through time.Time
	// offset is where the latest record of it that the owner read back
	// lies, -1 before one was: the owner commits no further, so that the
	// next owner reads it.
	offset int64
	// unrecorded says through is ahead of the latest record written.
	unrecorded bool
}

// periodicFirer fires the periodic jobs from partition 0 of the first
// topic's schedules topic, for one generation of its owner.
type periodicFirer struct {
	jobs     []PeriodicJob
	topic    string // the schedules topic holding their records
	window   time.Duration
	producer *kafka.Producer
	admin    *kafka.Admin
	backoff  supervision.Backoff
	metrics  *Metrics
	log      *slog.Logger
	// middleware is Config.Middleware: the jobs go through its Enqueue
	// phase.
	middleware []Middleware

	state map[string]*periodicState
	// partitionKey sends a record to partition 0 of topic; found when the
	// firer first fires.
	partitionKey []byte
	failures     int
	retryAt      time.Time
}

func periodicKey(name string) []byte { return []byte(periodicKeyPrefix + name) }

// observe takes in a periodic record read from the partition.
func (f *periodicFirer) observe(r *kafka.Record) {
	name, ok := strings.CutPrefix(string(r.Key), periodicKeyPrefix)
	if !ok || r.Value == nil {
		return
	}
	through, err := time.Parse(time.RFC3339Nano, string(r.Value))
	if err != nil {
		f.log.Warn("ordo: a periodic job's record is unreadable; ignored", "topic", r.Topic, "offset", r.Offset, "err", err)
		return
	}
	st := f.state[name]
	if st == nil {
		st = &periodicState{}
		f.state[name] = st
	}
	st.offset = r.Offset
	if through.After(st.through) {
		st.through = through
	}
}

// lowest is the lowest offset of a periodic record to keep reading from.
func (f *periodicFirer) lowest() int64 {
	low := int64(1<<63 - 1)
	for i := range f.jobs { // a job no longer registered holds nothing back
		if st := f.state[f.jobs[i].name]; st != nil && st.offset >= 0 {
			low = min(low, st.offset)
		}
	}
	return low
}

// maxTicksPerFire bounds the ticks one call of fire enqueues per job; the
// next call goes on.
const maxTicksPerFire = 1000

// fire enqueues every tick due at now, then records how far each job has
// fired. A job seen for the first time starts at now: its record is written
// before it fires, so that no later owner starts after a tick this one
// fired.
func (f *periodicFirer) fire(now time.Time) {
	if now.Before(f.retryAt) {
		return
	}
	if f.partitionKey == nil {
		if err := f.findPartitionKey(); err != nil {
			f.failed("looking up the schedules topic's partitions", err)
			return
		}
	}
	var drafts []jobDraft
	var names []string
	advanced := map[string]time.Time{}
	for i := range f.jobs {
		j := &f.jobs[i]
		st := f.state[j.name]
		if st == nil {
			f.state[j.name] = &periodicState{through: now, offset: -1, unrecorded: true}
			continue
		}
		through := st.through
		for range maxTicksPerFire {
			tick := j.sched.Next(through)
			if tick.IsZero() || tick.After(now) {
				break
			}
			if start := now.Add(-f.window); tick.Before(start) {
				// Missed while no server ran.
				if j.missed == MissedRunOnce {
					d, err := j.job(tick, now)
					if err != nil {
						f.log.Error("ordo: a periodic job could not be built", "name", j.name, "err", err)
						break
					}
					drafts, names = append(drafts, d), append(names, j.name)
				}
				through = start
				continue
			}
			d, err := j.job(tick, now)
			if err != nil {
				f.log.Error("ordo: a periodic job could not be built", "name", j.name, "err", err)
				break
			}
			drafts, names = append(drafts, d), append(names, j.name)
			through = tick
		}
		if through.After(st.through) {
			advanced[j.name] = through
		}
	}
	if len(drafts) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := produceJobs(ctx, f.middleware, nil, f.producer, drafts)
		cancel()
		if err != nil {
			// All are tried again; those written run twice, with the
			// same job id.
			f.failed("enqueueing periodic jobs", err)
			return
		}
		for _, name := range names {
			f.metrics.periodicFired(name)
		}
	}
	for name, through := range advanced {
		st := f.state[name]
		st.through, st.unrecorded = through, true
	}
	f.record()
}

// record writes how far each job has fired, where it is ahead of the
// records written.
func (f *periodicFirer) record() {
	var msgs []kafka.Message
	var recorded []*periodicState
	for name, st := range f.state {
		if !st.unrecorded {
			continue
		}
		msgs = append(msgs, kafka.Message{Topic: f.topic, Key: periodicKey(name), PartitionKey: f.partitionKey,
			Value:   []byte(st.through.UTC().Format(time.RFC3339Nano)),
			Headers: []kafka.Header{{Key: headerPeriodic, Value: []byte("1")}}})
		recorded = append(recorded, st)
	}
	if len(msgs) == 0 {
		f.failures = 0
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := f.producer.ProduceSync(ctx, msgs...)
	cancel()
	if err != nil {
		// The ticks stay fired; until a record is written, a new owner
		// fires them again.
		f.failed("recording the ticks fired", err)
		return
	}
	for _, st := range recorded {
		st.unrecorded = false
	}
	f.failures = 0
}

func (f *periodicFirer) failed(what string, err error) {
	f.failures++
	wait := f.backoff.Delay(f.failures)
	f.retryAt = time.Now().Add(wait)
	f.log.Warn("ordo: "+what+" failed; retrying", "topic", f.topic, "err", err, "retry_in", wait)
}

// findPartitionKey finds a partition key that sends a record to partition 0
// of the topic with its current partition count.
func (f *periodicFirer) findPartitionKey() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := f.admin.Partitions(ctx, f.topic)
	if err != nil {
		return err
	}
	n := counts[f.topic]
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrTopicsMissing, f.topic)
	}
	for i := 0; ; i++ {
		pk := []byte("ordo-periodic-" + strconv.Itoa(i))
		if kafka.Murmur2Partition(pk, n) == 0 {
			f.partitionKey = pk
			return nil
		}
	}
}

// job builds the job's run for tick: its id derives from the name and the
// tick.
func (p *PeriodicJob) job(tick, now time.Time) (jobDraft, error) {
	tickText := tick.UTC().Format(time.RFC3339Nano)
	opts := append(p.opts[:len(p.opts):len(p.opts)], withJobID(envelope.DerivedID(tick, p.name+"\x00"+tickText)),
		withHeader(HeaderPeriodicTick, tickText))
	return draft(p.topic, p.args, opts, now.UTC(), nil)
}
