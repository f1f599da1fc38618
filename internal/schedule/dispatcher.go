package schedule

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// Dispatcher sends scheduled jobs to their topics when they are due. Its
// partitions, the schedules topics', are the server's group's like the job
// topics': one membership assigns, revokes and commits them, cooperatively
// and statically when the server is, so a rebalance that does not move a
// schedules partition does not stop its dispatch. For each partition it owns
// it reads the records from the group's committed offset into an index of
// pending jobs (due time, offset, key hash), and once it has read up to the
// partition's end as of the assignment it dispatches what is due: it writes
// each due job to its topic (or a bad record to the dead-letter topic), then
// tombstones the record. The index holds no payloads, so the records of jobs
// due soon are read back ahead of their time, in one pass over the partition
// (see readAheadHorizon), and kept until they are dispatched. It commits the
// lowest offset still pending, so a new owner reads every pending job again.
//
// Dispatch is at least once: a job dispatched and not yet tombstoned (or
// whose tombstone the next owner has not read by the time it starts
// dispatching) when its dispatcher dies is dispatched again, with the same
// job id.
type Dispatcher struct {
	cfg  Config
	seed maphash.Seed

	// aheadBytes is what the partitions' read-aheads keep, counted by
	// recordSize, within readAheadBudget.
	aheadBytes atomic.Int64

	mu    sync.Mutex
	stats map[kafka.Offset]Stats // by topic and partition (Offset and Metadata unused)

	// ready is closed once the partitions of the first assignment were
	// read up to their end as of the assignment (or none was assigned).
	ready     chan struct{}
	readyOnce sync.Once
	assigned  atomic.Bool // Begin was called
}

// Config is what a Dispatcher needs of its server.
type Config struct {
	// Targets maps each schedules topic to the job topic it feeds.
	Targets map[string]string
	// Group is the server's group: a partition it never committed starts
	// where Group + FormerGroupSuffix left it.
	Group          string
	CommitInterval time.Duration
	Backoff        supervision.Backoff
	// Producer writes the due jobs, dead letters, tombstones and answers.
	Producer *kafka.Producer
	Admin    *kafka.Admin
	Logger   *slog.Logger
	Metrics  Metrics
	// DeadLetterTopic is named in the log of a record dead-lettered;
	// DeadLetter builds that dead letter, giving reason.
	DeadLetterTopic string
	DeadLetter      func(r *kafka.Record, reason string) kafka.Message
	// Periodic are the periodic jobs, fired by the owner of partition 0 of
	// PeriodicTopic; Failover is the longest a failover leaves that
	// partition without an owner. Enqueue enqueues runs that their Build
	// made.
	Periodic      []PeriodicJob
	PeriodicTopic string
	Failover      time.Duration
	Enqueue       func(ctx context.Context, runs []PeriodicRun) error
}

// Metrics counts what a Dispatcher does.
type Metrics interface {
	// Dispatched counts a job sent to target late after its due time.
	Dispatched(target string, late time.Duration)
	// DeadLettered counts a schedule record dead-lettered.
	DeadLettered(r *kafka.Record)
	// PeriodicFired counts a run of the periodic job name enqueued.
	PeriodicFired(name string)
}

// FormerGroupSuffix named the consumer group in which servers dispatched
// scheduled jobs before the schedules partitions joined the server's own
// group: the group + this (jobs.DefaultScheduleGroupSuffix).
const FormerGroupSuffix = ".schedule"

// scheduleFetchWait is how long a fetch of a schedules partition that finds
// nothing new waits: it bounds how late a job is dispatched when its
// partition is quiet.
const scheduleFetchWait = 50 * time.Millisecond

// dispatchBatch bounds the jobs a partition dispatches in one produce call.
const dispatchBatch = 1000

// The read-ahead: once the jobs whose records are in memory run out within
// readAheadLead, the records of the jobs due within readAheadHorizon from
// now are read back, by a goroutine of the partition's, in one pass over the
// partition: jobs due together lie at scattered offsets, so reading each
// batch back when it is due would read most of the partition every time.
// Each pass reads about the whole partition whatever it keeps, so the
// horizon is long and what a pass keeps is bounded by memory rather than
// time: the earliest due, at most readAheadMax records per partition and
// about readAheadBudget bytes for all of a server's partitions (with a
// million jobs pending the index's 65 MB and this stay under 256 MB). A
// due job whose record is not in memory is read back when it is due.
const (
	readAheadHorizon = 30 * time.Second
	readAheadLead    = 5 * time.Second
	readAheadMax     = 10 * dispatchBatch
	readAheadBudget  = 64 << 20
)

// maxDispatchAttempts is how often writing a due job to its topic may fail
// before it is dead-lettered: a target that refuses it for good must not
// stop its partition's other jobs for ever. With the default back-off that
// is about two and a half minutes of failures.
const maxDispatchAttempts = 10

// Stats is what a Dispatcher reports per schedules partition it dispatches
// (jobs.ScheduleStats).
type Stats struct {
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

// New returns a Dispatcher; it does not contact Kafka.
func New(cfg Config) *Dispatcher {
	return &Dispatcher{cfg: cfg, seed: maphash.MakeSeed(), stats: map[kafka.Offset]Stats{}, ready: make(chan struct{})}
}

// Topics are the schedules topics, sorted.
func (d *Dispatcher) Topics() []string {
	return slices.Sorted(maps.Keys(d.cfg.Targets))
}

// Runs tells whether topic is a schedules topic, whose partitions the
// dispatcher runs rather than the actor runtime.
func (d *Dispatcher) Runs(topic string) bool {
	_, ok := d.cfg.Targets[topic]
	return ok
}

// Ready is closed once the partitions of the first assignment were read up
// to their end as of the assignment (or none was assigned): from then on
// cancels are answered.
func (d *Dispatcher) Ready() <-chan struct{} { return d.ready }

// Stats returns the stats of the partitions being dispatched, by topic and
// partition.
func (d *Dispatcher) Stats() []Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Stats, 0, len(d.stats))
	for _, s := range d.stats {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Stats) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return a.Partition - b.Partition
	})
	return out
}

// Begin starts dispatching the schedules partitions of one assignment
// (claims, possibly none). Each is dispatched until its claim is revoked,
// then flushed and committed, and its channel closed. The first assignment
// closes ready once its partitions were read.
func (d *Dispatcher) Begin(sess *kafka.Session, claims []*kafka.Claim) []<-chan struct{} {
	first := !d.assigned.Swap(true)
	var reading sync.WaitGroup
	done := make([]<-chan struct{}, len(claims))
	for i, cl := range claims {
		finished := make(chan struct{})
		done[i] = finished
		cl.FetchMaxWait = scheduleFetchWait
		// committed starts at the group's own offset (-1: none, before a
		// carry-over), and dirty true: until the first commit round has
		// compared the two, the read position may be ahead of it.
		p := &partitionDispatch{d: d, sess: sess, claim: cl, target: d.cfg.Targets[cl.Topic], index: newScheduleIndex(),
			live: -1, committed: max(cl.Start, -1), dirty: true, read: func() {}}
		if first {
			reading.Add(1)
			p.read = sync.OnceFunc(reading.Done)
		}
		if len(d.cfg.Periodic) > 0 && cl.Topic == d.cfg.PeriodicTopic && cl.Partition == 0 {
			p.periodic = newPeriodicFirer(&d.cfg, cl.Topic)
		}
		go func() {
			defer close(finished)
			defer p.read()
			p.carryOver()
			p.run()
		}()
	}
	if first {
		go func() {
			reading.Wait()
			d.readyOnce.Do(func() { close(d.ready) })
		}()
	}
	return done
}

// carryOver starts a partition that the server's group never committed
// where the servers' former schedules group (Group +
// FormerGroupSuffix) left it, so that an upgraded deployment reads
// its pending jobs from there rather than the whole partition again. Reading
// from the log start would lose nothing either (tombstones remove what was
// dispatched), only take longer.
func (p *partitionDispatch) carryOver() {
	if p.claim.Start >= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	old := p.d.cfg.Group + FormerGroupSuffix
	offs, err := p.d.cfg.Admin.CommittedOffsets(ctx, old, p.claim.Topic)
	if err != nil {
		p.d.cfg.Logger.Warn("ordo: reading the former schedules group's offset failed; reading the partition from its start",
			"group", old, "topic", p.claim.Topic, "partition", p.claim.Partition, "err", err)
		return
	}
	if off, ok := offs[p.claim.Partition]; ok && off >= 0 {
		// The group itself has committed nothing, so the first commit
		// round writes this offset into it even when nothing is read
		// after it: the former group's offsets (which Kafka expires once
		// that group is empty for offsets.retention.minutes) are needed
		// only once.
		p.claim.Start = off
		p.d.cfg.Logger.Info("ordo: a schedules partition starts where the former schedules group left it",
			"group", old, "topic", p.claim.Topic, "partition", p.claim.Partition, "offset", off)
	}
}

// partitionDispatch dispatches one schedules partition for one generation.
// Only its goroutine touches it.
type partitionDispatch struct {
	d      *Dispatcher
	sess   *kafka.Session
	claim  *kafka.Claim
	lookup *kafka.Claim // reads due records back that were not read ahead
	target string
	index  *scheduleIndex
	// keyless are the offsets of records without a key: not schedules;
	// they are dead-lettered once the partition is read.
	keyless []int64
	// live is the partition's end as of the first fetch (its last stable
	// offset: a transaction open then does not hold the reading back, and
	// its records, once committed, count as written after): records from
	// there on were written while this dispatcher owned the partition, so
	// it answers the cancels among them; and it dispatches nothing before
	// it has read that far, so that tombstones written before the
	// assignment are applied first.
	live int64
	next int64 // the claim's fetch position
	// retry are due jobs whose dispatch failed, tried again at retryAt
	// before any other job of the partition, so no key is overtaken.
	retry    []scheduleEntry
	attempts int // failed writes of retry
	tries    int // failures of retry, writes or reads
	retryAt  time.Time
	// answers and tombstones wait to be written.
	answers, tombstones []kafka.Message
	committed           int64
	dirty               bool
	// read is called once the partition was read up to live.
	read func()
	// ahead holds the records of pending jobs due by aheadUntil (Unix
	// nanoseconds), by offset, but those beyond readAheadMax; a record
	// read with a run-at by then is kept as it is applied. aheadRead is
	// the read-ahead in flight (nil when none), which reads with
	// aheadReader and brings the jobs due by aheadNext; after a failed
	// one, the next waits until aheadRetry.
	ahead         map[int64]kafka.Record
	aheadUntil    int64
	aheadNext     int64
	aheadRead     chan aheadResult
	aheadReader   *kafka.Claim
	aheadReserved int64 // bytes reserved for the read-ahead in flight
	// aheadLimit bounds aheadNext: a job due by it was applied and not
	// kept while the read-ahead was in flight.
	aheadLimit int64
	// sizeSum and sizeCount measure the partition's schedule records, to
	// reserve the budget of a read-ahead before it reads.
	sizeSum, sizeCount int64
	aheadRetry         time.Time
	aheadFails         int
	aheadStop          context.CancelFunc
	// periodic fires the periodic jobs; nil but on their partition.
	periodic *periodicFirer
}

func (p *partitionDispatch) run() {
	defer p.claim.Close()
	p.lookup = p.claim.Reader(0)
	defer p.lookup.Close()
	p.aheadReader = p.claim.Reader(0)
	defer p.aheadReader.Close()
	aheadCtx, aheadStop := context.WithCancel(context.Background())
	p.aheadStop = aheadStop
	defer p.stopReadAhead()
	p.ahead, p.aheadUntil, p.aheadNext = map[int64]kafka.Record{}, math.MinInt64, math.MinInt64
	key := kafka.Offset{Topic: p.claim.Topic, Partition: p.claim.Partition}
	defer func() {
		p.d.mu.Lock()
		delete(p.d.stats, key)
		p.d.mu.Unlock()
	}()
	p.next = p.claim.Start
	ctx := context.Background()
	lastCommit := time.Now()
	var buf []kafka.Record
	for failures := 0; ; {
		recs, next, err := p.claim.Fetch(ctx, buf[:0], dispatchBatch)
		if errors.Is(err, kafka.ErrRevoked) || isClosed(p.claim.Revoked()) {
			p.flush()
			p.commit()
			return
		}
		if err != nil {
			failures++
			wait := p.d.cfg.Backoff.Delay(failures)
			p.d.cfg.Logger.Warn("ordo: reading a schedules partition failed; retrying", "topic", p.claim.Topic,
				"partition", p.claim.Partition, "err", err, "retry_in", wait)
			select {
			case <-time.After(wait):
			case <-p.claim.Revoked():
			}
			continue
		}
		failures = 0
		if p.live < 0 {
			p.live = p.claim.HighWatermark()
		}
		for i := range recs {
			p.apply(&recs[i])
		}
		p.next = next
		reading := p.next < p.live
		if !reading {
			p.report(key, false) // before read: from Ready on, Schedules shows the partition read
			p.read()
			p.mergeReadAhead(false)
			p.dispatchDue(time.Now())
			if p.periodic != nil {
				p.periodic.fire(time.Now())
			}
			p.readAhead(aheadCtx, time.Now())
		}
		p.flush()
		if time.Since(lastCommit) >= p.d.cfg.CommitInterval {
			p.commit()
			lastCommit = time.Now()
		}
		p.report(key, reading)
		buf = recs
	}
}

func (p *partitionDispatch) hash(key []byte) uint64 { return maphash.Bytes(p.d.seed, key) }

// apply indexes one record read from the partition.
func (p *partitionDispatch) apply(r *kafka.Record) {
	p.dirty = true
	if r.Header(HeaderPeriodic) != nil { // how far a periodic job has fired
		if p.periodic != nil {
			p.periodic.observe(r)
		}
		return
	}
	if r.Value == nil { // a tombstone
		if len(r.Key) == 0 || r.Header(HeaderCancelOutcome) != nil {
			return
		}
		removed := p.index.remove(p.hash(r.Key))
		if r.Header(HeaderCancel) != nil && r.Offset >= p.live {
			outcome := CancelOutcomeNotPending
			if removed {
				outcome = CancelOutcomeCancelled
			}
			p.answers = append(p.answers, kafka.Message{Topic: r.Topic, Key: r.Key, Headers: []kafka.Header{
				{Key: HeaderCancelOutcome, Value: []byte(outcome)},
				{Key: HeaderCancelOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			}})
		}
		return
	}
	if len(r.Key) == 0 {
		p.keyless = append(p.keyless, r.Offset)
		return
	}
	runAt := int64(math.MinInt64) // not a schedule: due at once, to be dead-lettered
	if t, err := readRunAt(r); err == nil {
		runAt = t.UnixNano()
	}
	p.index.add(p.hash(r.Key), r.Offset, runAt)
	size := recordSize(r)
	p.sizeSum, p.sizeCount = p.sizeSum+size, p.sizeCount+1
	if runAt <= max(p.aheadUntil, p.aheadNext) { // the read-ahead has passed it, or will
		if len(p.ahead) < readAheadMax && p.d.reserve(size) {
			p.ahead[r.Offset] = *r
		} else { // in memory only up to before it
			p.aheadUntil = min(p.aheadUntil, runAt-1)
			p.aheadLimit = min(p.aheadLimit, runAt-1)
		}
	}
}

// dispatchDue dispatches the jobs due at now, in batches: due time, then
// offset order.
func (p *partitionDispatch) dispatchDue(now time.Time) {
	for !isClosed(p.claim.Revoked()) {
		var batch []scheduleEntry
		switch {
		case len(p.retry) > 0:
			if now.Before(p.retryAt) {
				return
			}
			batch = p.retry
		case len(p.keyless) > 0:
			for _, off := range p.keyless {
				batch = append(batch, scheduleEntry{runAt: math.MinInt64, offset: off})
			}
			p.keyless = nil
		default:
			batch = p.index.popDue(now.UnixNano(), dispatchBatch)
		}
		if len(batch) == 0 {
			return
		}
		p.dirty = true
		if !p.dispatch(batch, now) {
			return
		}
	}
}

// dispatch reads the batch's records back and sends each job to its topic,
// or its record to the dead-letter topic when it is not a valid schedule.
// It returns false when the batch, or part of it, must be tried again.
func (p *partitionDispatch) dispatch(batch []scheduleEntry, now time.Time) bool {
	records, err := p.records(batch)
	if err != nil {
		p.failed(batch, err, false)
		return false
	}
	now = time.Now() // after any read: the lateness the metric reports
	// sent are the batch's jobs in the order of msgs.
	type outgoing struct {
		entry  scheduleEntry
		record kafka.Record
		late   time.Duration
		reason string // why it is dead-lettered; "" when dispatched
	}
	msgs := make([]kafka.Message, 0, len(batch))
	sent := make([]outgoing, 0, len(batch))
	for _, e := range batch {
		r, ok := records[e.offset]
		if !ok {
			p.d.cfg.Logger.Warn("ordo: a pending schedule record is no longer in its partition; skipped",
				"topic", p.claim.Topic, "partition", p.claim.Partition, "offset", e.offset)
			continue
		}
		job, err := readSchedule(&r, p.target)
		if err == nil && p.attempts >= maxDispatchAttempts {
			err = fmt.Errorf("dispatch to %q failed %d times", p.target, p.attempts)
		}
		if err != nil {
			reason := "schedule: " + err.Error()
			msgs = append(msgs, p.d.cfg.DeadLetter(&r, reason))
			sent = append(sent, outgoing{entry: e, record: r, reason: reason})
			continue
		}
		msgs = append(msgs, job.msg)
		sent = append(sent, outgoing{entry: e, record: r, late: now.Sub(job.runAt)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	ds, err := p.d.cfg.Producer.ProduceSync(ctx, msgs...)
	cancel()
	var perr *kafka.ProduceError
	if err != nil && !errors.As(err, &perr) {
		p.failed(batch, err, true)
		return false
	}
	var retry []scheduleEntry
	for i, o := range sent {
		if perr != nil && perr.Errs[i] != nil {
			retry = append(retry, o.entry)
			err = perr.Errs[i]
			continue
		}
		where := "dead-lettered"
		if o.reason == "" {
			where = ds[i].Topic + "/" + strconv.Itoa(ds[i].Partition) + "@" + strconv.FormatInt(ds[i].Offset, 10)
			p.d.cfg.Metrics.Dispatched(p.target, o.late)
		} else {
			p.d.cfg.Metrics.DeadLettered(&o.record)
			p.d.cfg.Logger.Error("ordo: schedule record dead-lettered", "topic", p.claim.Topic, "partition", p.claim.Partition,
				"offset", o.entry.offset, "dead_letter_topic", p.d.cfg.DeadLetterTopic, "reason", o.reason)
		}
		p.drop(o.entry.offset)
		if len(o.record.Key) > 0 {
			p.tombstones = append(p.tombstones, kafka.Message{Topic: p.claim.Topic, Key: o.record.Key,
				Headers: []kafka.Header{{Key: HeaderDispatched, Value: []byte(where)}}})
		}
	}
	if len(retry) > 0 {
		p.failed(retry, err, true)
		return false
	}
	p.retry, p.attempts, p.tries = nil, 0, 0
	return true
}

// failed keeps the batch to try again after a back-off. writing says the
// jobs could not be written to their topic, which counts towards
// maxDispatchAttempts; reading them back does not.
func (p *partitionDispatch) failed(batch []scheduleEntry, err error, writing bool) {
	p.tries++
	if writing {
		p.attempts++
	}
	wait := p.d.cfg.Backoff.Delay(p.tries)
	p.retry, p.retryAt = batch, time.Now().Add(wait)
	p.d.cfg.Logger.Warn("ordo: dispatching scheduled jobs failed; retrying", "topic", p.claim.Topic, "partition", p.claim.Partition,
		"jobs", len(batch), "failures", p.tries, "err", err, "retry_in", wait)
}

// records returns the batch's records by offset: those read ahead, and the
// others read back now. A record that is gone (deleted by retention) is
// missing from the map.
func (p *partitionDispatch) records(batch []scheduleEntry) (map[int64]kafka.Record, error) {
	out := make(map[int64]kafka.Record, len(batch))
	var missing []scheduleEntry
	for _, e := range batch {
		if r, ok := p.ahead[e.offset]; ok {
			out[e.offset] = r
		} else {
			missing = append(missing, e)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	// A read-ahead in flight brings the jobs due by aheadNext: wait for it
	// rather than read them twice.
	if p.aheadRead != nil && slices.ContainsFunc(missing, func(e scheduleEntry) bool { return e.runAt <= p.aheadNext }) {
		p.mergeReadAhead(true)
		missing = slices.DeleteFunc(missing, func(e scheduleEntry) bool {
			r, ok := p.ahead[e.offset]
			if ok {
				out[e.offset] = r
			}
			return ok
		})
		if len(missing) == 0 {
			return out, nil
		}
	}
	offsets := make([]int64, len(missing))
	for i, e := range missing {
		offsets[i] = e.offset
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loaded, err := readBack(ctx, p.lookup, offsets)
	if err != nil {
		return nil, err
	}
	for off, r := range loaded {
		out[off] = r
	}
	return out, nil
}

// aheadResult is what a read-ahead read: records by offset.
type aheadResult struct {
	records map[int64]kafka.Record
	err     error
}

// recordSize is about what a record kept in memory costs.
func recordSize(r *kafka.Record) int64 {
	n := 200 + len(r.Key) + len(r.Value) // the Record, its map slot and the headers' slice
	for _, h := range r.Headers {
		n += 40 + len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// reserve counts n bytes towards readAheadBudget, if they fit.
func (d *Dispatcher) reserve(n int64) bool {
	if d.aheadBytes.Add(n) > readAheadBudget {
		d.aheadBytes.Add(-n)
		return false
	}
	return true
}

// drop forgets the record kept at off, if any.
func (p *partitionDispatch) drop(off int64) {
	if r, ok := p.ahead[off]; ok {
		p.d.aheadBytes.Add(-recordSize(&r))
		delete(p.ahead, off)
	}
}

// readAhead starts reading back the records of the jobs due within
// readAheadHorizon of now that are not in memory yet, once those in memory
// run out within readAheadLead, unless a read-ahead is in flight.
func (p *partitionDispatch) readAhead(ctx context.Context, now time.Time) {
	t := now.UnixNano()
	if p.aheadRead != nil || now.Before(p.aheadRetry) || (p.aheadUntil != math.MinInt64 && t < p.aheadUntil-int64(readAheadLead)) ||
		p.d.aheadBytes.Load() >= readAheadBudget {
		return
	}
	for off, r := range p.ahead { // cancelled or replaced since
		if !p.index.pending(p.hash(r.Key), off) {
			p.drop(off)
		}
	}
	avg := max(p.sizeSum/max(p.sizeCount, 1), 1)
	room := min(readAheadMax-len(p.ahead), int((readAheadBudget-p.d.aheadBytes.Load())/avg))
	if room <= 0 {
		return
	}
	until := t + int64(readAheadHorizon)
	due := slices.DeleteFunc(p.index.dueWithin(p.aheadUntil, until, nil), func(e scheduleEntry) bool {
		_, kept := p.ahead[e.offset]
		return kept
	})
	if len(due) > room {
		// Keep the earliest; the others are read with a later read-ahead.
		slices.SortFunc(due, func(a, b scheduleEntry) int {
			return cmp.Or(cmp.Compare(a.runAt, b.runAt), cmp.Compare(a.offset, b.offset))
		})
		cut := due[room].runAt
		if n := slices.IndexFunc(due, func(e scheduleEntry) bool { return e.runAt == cut }); n > 0 {
			room = n // every job due at cut, or none, is in memory
		}
		due, until = due[:room], cut-1
	}
	if len(due) == 0 {
		p.aheadUntil = max(p.aheadUntil, until)
		return
	}
	offsets := make([]int64, len(due))
	for i, e := range due {
		offsets[i] = e.offset
	}
	ch := make(chan aheadResult, 1)
	p.aheadReserved = int64(len(due)) * avg
	p.d.aheadBytes.Add(p.aheadReserved) // trued up when read
	p.aheadRead, p.aheadNext, p.aheadLimit = ch, until, math.MaxInt64
	reader := p.aheadReader
	go func() {
		recs, err := readBack(ctx, reader, offsets)
		ch <- aheadResult{recs, err}
	}()
}

// mergeReadAhead keeps the records of the read-ahead in flight, if it is
// done or wait is true.
func (p *partitionDispatch) mergeReadAhead(wait bool) {
	if p.aheadRead == nil {
		return
	}
	var res aheadResult
	if wait {
		res = <-p.aheadRead
	} else {
		select {
		case res = <-p.aheadRead:
		default:
			return
		}
	}
	p.aheadRead = nil
	p.d.aheadBytes.Add(-p.aheadReserved)
	p.aheadReserved = 0
	if res.err != nil {
		p.aheadFails++
		wait := p.d.cfg.Backoff.Delay(p.aheadFails)
		p.aheadRetry = time.Now().Add(wait)
		p.aheadNext = math.MinInt64
		p.d.cfg.Logger.Warn("ordo: reading scheduled jobs ahead failed; retrying", "topic", p.claim.Topic,
			"partition", p.claim.Partition, "err", res.err, "retry_in", wait)
		return
	}
	p.aheadFails = 0
	for off, r := range res.records {
		if _, kept := p.ahead[off]; !kept && p.index.pending(p.hash(r.Key), off) { // not dispatched, cancelled or replaced since
			p.ahead[off] = r
			p.d.aheadBytes.Add(recordSize(&r))
		}
	}
	p.aheadUntil = max(p.aheadUntil, min(p.aheadNext, p.aheadLimit))
	p.aheadNext = math.MinInt64
}

// stopReadAhead ends the read-ahead in flight, if any, and waits for it.
func (p *partitionDispatch) stopReadAhead() {
	p.aheadStop()
	if p.aheadRead != nil {
		<-p.aheadRead
		p.aheadRead = nil
		p.d.aheadBytes.Add(-p.aheadReserved)
	}
	for off := range p.ahead {
		p.drop(off)
	}
}

// readBack reads the records at offsets with reader, in one pass. A record
// that is gone (deleted by retention or compaction) is missing from the
// map.
func readBack(ctx context.Context, reader *kafka.Claim, offsets []int64) (map[int64]kafka.Record, error) {
	offsets = slices.Clone(offsets)
	slices.Sort(offsets)
	offsets = slices.Compact(offsets)
	out := make(map[int64]kafka.Record, len(offsets))
	var buf []kafka.Record
	for i, empty := 0, 0; i < len(offsets); {
		// One record at a time: the reader skips the records before
		// the next offset wanted within the response it holds without
		// copying them, and fetches again only past its end.
		reader.SetOffset(offsets[i])
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		recs, next, err := reader.Fetch(fctx, buf[:0], 1)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			for i < len(offsets) && offsets[i] < r.Offset {
				i++ // compacted away
			}
			if i < len(offsets) && offsets[i] == r.Offset {
				out[r.Offset] = r
				i++
			}
		}
		if len(recs) == 0 {
			if empty++; next > offsets[i] || empty == 3 {
				i++ // not in the log (any more)
				empty = 0
			}
		} else {
			empty = 0
		}
		buf = recs[:0:0] // the records are kept in out
	}
	return out, nil
}

// flush writes the cancels' answers and the tombstones of resolved jobs. A
// tombstone that fails is tried again with the next flush; until then, a new
// owner of the partition could dispatch its job again.
func (p *partitionDispatch) flush() {
	msgs := append(p.answers, p.tombstones...)
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := p.d.cfg.Producer.ProduceSync(ctx, msgs...)
	cancel()
	answered := len(p.answers)
	p.answers, p.tombstones = nil, nil
	if err == nil {
		return
	}
	// The tombstones that failed are written again; answers are not.
	var perr *kafka.ProduceError
	partial := errors.As(err, &perr)
	for i, m := range msgs[answered:] {
		if !partial || perr.Errs[answered+i] != nil {
			p.tombstones = append(p.tombstones, m)
		}
	}
	p.d.cfg.Logger.Warn("ordo: writing schedule tombstones failed; retrying", "topic", p.claim.Topic,
		"partition", p.claim.Partition, "tombstones", len(p.tombstones), "err", err)
}

// commit commits the lowest offset still pending (or the read position when
// none is), so the next owner reads every pending job and nothing resolved
// before it.
func (p *partitionDispatch) commit() {
	if p.next < 0 || !p.dirty {
		return
	}
	low := min(p.index.lowest(), p.next)
	for _, e := range p.retry {
		low = min(low, e.offset)
	}
	for _, off := range p.keyless {
		low = min(low, off)
	}
	if p.periodic != nil {
		low = min(low, p.periodic.lowest())
	}
	if low <= p.committed {
		p.dirty = false
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := p.sess.Commit(ctx, kafka.Offset{Topic: p.claim.Topic, Partition: p.claim.Partition, Offset: low})
	cancel()
	if err != nil {
		p.d.cfg.Logger.Warn("ordo: committing a schedules partition failed", "topic", p.claim.Topic,
			"partition", p.claim.Partition, "offset", low, "err", err)
		return
	}
	p.committed, p.dirty = low, false
}

func (p *partitionDispatch) report(key kafka.Offset, reading bool) {
	s := Stats{Topic: p.claim.Topic, Partition: p.claim.Partition, Pending: p.index.len() + len(p.retry) + len(p.keyless),
		Reading: reading}
	if next := p.index.next(); next != math.MaxInt64 && next != math.MinInt64 {
		s.NextDue = time.Unix(0, next).UTC()
	}
	p.d.mu.Lock()
	p.d.stats[key] = s
	p.d.mu.Unlock()
}
