package schedule

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// PeriodicJob is what the firer needs of a periodic job (jobs.PeriodicJob).
type PeriodicJob struct {
	Name string
	// Next returns the first tick after t; zero when there is none.
	Next func(t time.Time) time.Time
	// RunMissedOnce fires one run for the ticks missed while no server ran
	// (jobs.MissedRunOnce); otherwise none is fired.
	RunMissedOnce bool
	// Build builds the run of tick, enqueued at now.
	Build func(tick, now time.Time) (PeriodicRun, error)
}

// PeriodicRun is one run of a periodic job, built by PeriodicJob.Build and
// enqueued by Config.Enqueue; the firer does not look inside.
type PeriodicRun any

// periodicState is how far one periodic job has fired, as its owner knows
// it.
type periodicState struct {
	// through is the time up to which every tick was fired (or, for
	// a job that skips missed ticks, let go).
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
	cfg   *Config
	topic string // the schedules topic holding their records

	state map[string]*periodicState
	// partitionKey sends a record to partition 0 of topic; found when the
	// firer first fires.
	partitionKey []byte
	failures     int
	retryAt      time.Time
}

func newPeriodicFirer(cfg *Config, topic string) *periodicFirer {
	return &periodicFirer{cfg: cfg, topic: topic, state: map[string]*periodicState{}}
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
		f.cfg.Logger.Warn("ordo: a periodic job's record is unreadable; ignored", "topic", r.Topic, "offset", r.Offset, "err", err)
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
	for i := range f.cfg.Periodic { // a job no longer registered holds nothing back
		if st := f.state[f.cfg.Periodic[i].Name]; st != nil && st.offset >= 0 {
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
	var runs []PeriodicRun
	var names []string
	advanced := map[string]time.Time{}
	for i := range f.cfg.Periodic {
		j := &f.cfg.Periodic[i]
		st := f.state[j.Name]
		if st == nil {
			f.state[j.Name] = &periodicState{through: now, offset: -1, unrecorded: true}
			continue
		}
		through := st.through
		for range maxTicksPerFire {
			tick := j.Next(through)
			if tick.IsZero() || tick.After(now) {
				break
			}
			if start := now.Add(-f.cfg.Failover); tick.Before(start) {
				// Missed while no server ran.
				if j.RunMissedOnce {
					run, err := j.Build(tick, now)
					if err != nil {
						f.cfg.Logger.Error("ordo: a periodic job could not be built", "name", j.Name, "err", err)
						break
					}
					runs, names = append(runs, run), append(names, j.Name)
				}
				through = start
				continue
			}
			run, err := j.Build(tick, now)
			if err != nil {
				f.cfg.Logger.Error("ordo: a periodic job could not be built", "name", j.Name, "err", err)
				break
			}
			runs, names = append(runs, run), append(names, j.Name)
			through = tick
		}
		if through.After(st.through) {
			advanced[j.Name] = through
		}
	}
	if len(runs) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := f.cfg.Enqueue(ctx, runs)
		cancel()
		if err != nil {
			// All are tried again; those written run twice, with the
			// same job id.
			f.failed("enqueueing periodic jobs", err)
			return
		}
		for _, name := range names {
			f.cfg.Metrics.PeriodicFired(name)
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
			Headers: []kafka.Header{{Key: HeaderPeriodic, Value: []byte("1")}}})
		recorded = append(recorded, st)
	}
	if len(msgs) == 0 {
		f.failures = 0
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := f.cfg.Producer.ProduceSync(ctx, msgs...)
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
	wait := f.cfg.Backoff.Delay(f.failures)
	f.retryAt = time.Now().Add(wait)
	f.cfg.Logger.Warn("ordo: "+what+" failed; retrying", "topic", f.topic, "err", err, "retry_in", wait)
}

// findPartitionKey finds a partition key that sends a record to partition 0
// of the topic with its current partition count.
func (f *periodicFirer) findPartitionKey() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := f.cfg.Admin.Partitions(ctx, f.topic)
	if err != nil {
		return err
	}
	n := counts[f.topic]
	if n == 0 {
		return fmt.Errorf("schedule: topic %s does not exist", f.topic)
	}
	for i := 0; ; i++ {
		pk := []byte("ordo-periodic-" + strconv.Itoa(i))
		if kafka.Murmur2Partition(pk, n) == 0 {
			f.partitionKey = pk
			return nil
		}
	}
}
