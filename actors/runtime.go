package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/internal/backoff"
	"github.com/ordo-go/ordo/kafka"
)

// Config configures a Runtime. Zero values take the defaults noted.
type Config struct {
	// Handler does the work of one record and says what follows (see
	// Outcome). Required.
	Handler Handler
	// Batch, when set, lets consecutive records of a key run together in
	// one call of BatchHandler: it is asked once per record, when the
	// record is about to run, and records given the same non-nil
	// *BatchRule share a batch (see BatchRule). nil: the record runs
	// alone, through Handler. Default: no batches.
	Batch func(r *kafka.Record) *BatchRule
	// BatchHandler does the work of a batch. Required with Batch.
	BatchHandler BatchHandler
	// Concurrency is how many records may run at once in the process,
	// across all partitions and keys: the size of the pool of goroutines
	// that run handlers. Default DefaultConcurrency, which suits IO-bound
	// work; CPU-bound work wants about the number of cores.
	Concurrency int
	// MaxBuffered bounds the records held per partition: fetched and not
	// finished, waiting at their key or running. At the bound fetching
	// pauses until the keys catch up. Records that finished and only wait
	// for a slower one below them to be committed do not count (see
	// MaxSpan). A source may hold more besides, between calls to Fetch
	// (see PrefetchSource). Default DefaultMaxBuffered.
	MaxBuffered int
	// MaxSpan bounds how far reading may run ahead of the committable
	// offset (the oldest unfinished record) per partition. Finished
	// records above it cost one bit each, so a long or stuck record at the
	// head stops its partition's other keys only after MaxSpan offsets.
	// Default DefaultMaxSpanFactor × MaxBuffered; never below MaxBuffered.
	MaxSpan int
	// VirtualKey computes a record's virtual-partition key. Default
	// KeyOfRecord (the message key).
	VirtualKey VirtualKeyFunc
	// MaxVirtualPartitions, when positive, reduces the virtual keys of each
	// partition onto that many slots (Karafka's max_partitions). Default 0:
	// every distinct key is its own virtual partition.
	MaxVirtualPartitions int
	// IdleTimeout passivates a key's actor after this long without
	// records. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxIdleKeys caps the idle key actors kept alive in the process;
	// beyond it the least recently used idle key of the partition that
	// went over is passivated at once. Memory then follows MaxBuffered,
	// Concurrency and this cap, never the number of distinct keys. Default
	// DefaultMaxIdleKeys.
	MaxIdleKeys int
	// CommitInterval is the longest a finished record waits to be
	// committed when no fetched batch completes. Default
	// DefaultCommitInterval.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long a shutdown waits for records in
	// flight before cancelling their contexts. Default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// LongRunning tells which records run in long-running mode: they may
	// run longer than the group's rebalance timeout; a revocation does not
	// wait for them but cancels their context after LongRunningGrace, and
	// does not commit them. Default: none.
	LongRunning func(r *kafka.Record) bool
	// LongRunningGrace is how long a long-running record may go on after
	// its partition was revoked before its context is cancelled. Default
	// DefaultLongRunningGrace.
	LongRunningGrace time.Duration
	// KeyActorStrategy supervises key actors: it decides about a key actor
	// whose handler panicked (a Handler should not; package jobs recovers
	// every job's panic into an Outcome). A restarted key actor runs its
	// record again after a back-off; a strategy that stops one stops its
	// partition's progress, so it should always restart. Default:
	// protoactor's restarting strategy.
	KeyActorStrategy actor.SupervisorStrategy
	// RestartBackoff is how long a restarted key actor waits before it
	// runs its record again: attempt counts the record's runs so far.
	// Default: 1 s doubling to 30 s (package jobs passes its
	// Config.Backoff).
	RestartBackoff func(attempt int) time.Duration
	// System is the protoactor ActorSystem to spawn into, for services that
	// already run one. Default: a system of ordo's own.
	System *actor.ActorSystem
	// Logger receives the runtime's logs. Default slog.Default().
	Logger *slog.Logger
	// OnCommitted, when set, is called with each offset this runtime
	// committed, after the broker accepted it, from the committing
	// goroutine; it must return quickly. What no commit covered yet is what
	// a crash may run again: a test or a chaos checker watches commits here
	// to know which finished records that is. Default: nothing is called.
	OnCommitted func(kafka.Offset)
	// OnReleased, when set, is called for each partition this runtime gave
	// up (a revocation or a shutdown), after its final commit was tried:
	// from then on the partition's next owner starts from the last commit
	// that succeeded. Default: nothing is called.
	OnReleased func(topic string, partition int)
}

// The defaults of Config. Package jobs uses the same ones.
const (
	DefaultConcurrency      = 100
	DefaultMaxBuffered      = 1000
	DefaultMaxSpanFactor    = 100 // MaxSpan is this × MaxBuffered by default
	DefaultIdleTimeout      = 30 * time.Second
	DefaultMaxIdleKeys      = 10_000
	DefaultCommitInterval   = time.Second
	DefaultShutdownTimeout  = 30 * time.Second
	DefaultLongRunningGrace = 5 * time.Second
)

// ErrShutdownTimeout is returned (wrapped, with what was left) when records
// were still running when the shutdown timeout passed.
var ErrShutdownTimeout = errors.New("actors: shutdown timeout passed with records in flight")

// ErrAssigned is returned by Assign for a partition the runtime already holds.
var ErrAssigned = errors.New("actors: partition already assigned")

func (c Config) withDefaults() (Config, error) {
	if c.Handler == nil {
		return c, errors.New("actors.Config.Handler is nil")
	}
	if c.Batch != nil && c.BatchHandler == nil {
		return c, errors.New("actors.Config.BatchHandler is nil, but Batch is set")
	}
	for _, s := range []struct {
		name string
		v    int64
	}{
		{"Concurrency", int64(c.Concurrency)},
		{"MaxBuffered", int64(c.MaxBuffered)},
		{"MaxSpan", int64(c.MaxSpan)},
		{"MaxVirtualPartitions", int64(c.MaxVirtualPartitions)},
		{"IdleTimeout", int64(c.IdleTimeout)},
		{"MaxIdleKeys", int64(c.MaxIdleKeys)},
		{"CommitInterval", int64(c.CommitInterval)},
		{"ShutdownTimeout", int64(c.ShutdownTimeout)},
		{"LongRunningGrace", int64(c.LongRunningGrace)},
	} {
		if s.v < 0 {
			return c, fmt.Errorf("actors.Config.%s must not be negative (got %d)", s.name, s.v)
		}
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Concurrency, DefaultConcurrency)
	def(&c.MaxBuffered, DefaultMaxBuffered)
	def(&c.MaxSpan, DefaultMaxSpanFactor*c.MaxBuffered)
	def(&c.MaxIdleKeys, DefaultMaxIdleKeys)
	defDur(&c.IdleTimeout, DefaultIdleTimeout)
	defDur(&c.CommitInterval, DefaultCommitInterval)
	defDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defDur(&c.LongRunningGrace, DefaultLongRunningGrace)
	if c.MaxSpan < c.MaxBuffered {
		return c, fmt.Errorf("actors.Config.MaxSpan (%d) must not be below MaxBuffered (%d)", c.MaxSpan, c.MaxBuffered)
	}
	if c.VirtualKey == nil {
		c.VirtualKey = KeyOfRecord
	}
	if c.RestartBackoff == nil {
		c.RestartBackoff = func(attempt int) time.Duration { return backoff.Delay(time.Second, 30*time.Second, attempt) }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Runtime runs records through partition supervisors and key actors. One
// Runtime serves every partition of a process and holds the process-wide
// concurrency limit. Partitions come and go one at a time: Assign starts
// one, Revoke drains, commits and lets go of some while the others run on.
type Runtime struct {
	cfg     Config
	system  *actor.ActorSystem
	reducer *reducer
	pool    *workerPool

	keyProps        []actor.PropsOption
	supervisorProps []actor.PropsOption

	// ctx is the parent of every handler's context; cancelling it is the
	// last resort of a shutdown that ran out of time.
	ctx    context.Context
	cancel context.CancelFunc

	committer *committer
	idleKeys  atomic.Int64 // idle key actors alive, across partitions

	mu    sync.Mutex
	parts map[partitionID]*partition
}

type partitionID struct {
	topic     string
	partition int
}

// NewRuntime validates cfg and starts a Runtime: its handler pool and its
// committer. Close stops them.
func NewRuntime(cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, system: cfg.System, parts: map[partitionID]*partition{}}
	if rt.system == nil {
		logger := cfg.Logger
		rt.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return logger.With("lib", "protoactor")
		}))
	}
	if cfg.MaxVirtualPartitions > 0 {
		r := newReducer(cfg.MaxVirtualPartitions)
		rt.reducer = &r
	}
	rt.pool = newWorkerPool(cfg.Concurrency)
	pool := rt.pool
	rt.keyProps = []actor.PropsOption{actor.WithMailbox(func() actor.Mailbox { return &keyMailbox{pool: pool} })}
	strategy := cfg.KeyActorStrategy
	if strategy == nil {
		strategy = actor.NewRestartingStrategy()
	}
	rt.supervisorProps = append(rt.supervisorProps, actor.WithSupervisor(strategy))
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	rt.committer = newCommitter(rt)
	go rt.committer.run()
	return rt, nil
}

// System is the ActorSystem the runtime spawns into.
func (rt *Runtime) System() *actor.ActorSystem { return rt.system }

// Assign starts running a partition: its supervisor fetches from a.Source
// from a.Start and commits through a.Generation. It returns ErrAssigned if
// the runtime holds the partition already.
func (rt *Runtime) Assign(a Assignment) error {
	if a.Source == nil || a.Generation == nil {
		return fmt.Errorf("actors: Assign %s/%d: Source and Generation are required", a.Topic, a.Partition)
	}
	id := partitionID{a.Topic, a.Partition}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, ok := rt.parts[id]; ok {
		return fmt.Errorf("%w: %s/%d", ErrAssigned, a.Topic, a.Partition)
	}
	p := newPartition(rt, a)
	p.loop = newSupervisorLoop()
	p.pid = rt.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
		return newPartitionSupervisor(rt, p, a.Source)
	}, append([]actor.PropsOption{actor.WithDispatcher(p.loop)}, rt.supervisorProps...)...))
	root, pid := rt.system.Root, p.pid
	p.loop.count = func() { root.Send(pid, &countOutcomes{}) }
	p.loop.urgent = p.countIsUrgent
	go p.loop.run()
	rt.parts[id] = p
	rt.committer.kick()
	return nil
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int
}

// Revoke lets go of the partitions: from the call on no record of theirs
// starts; each key finishes only the record it is running (records in
// long-running mode are not waited for; their contexts end after
// LongRunningGrace); what the keys buffered is dropped, neither run nor
// committed. Then the watermarks are committed, in one request per
// generation, and the partitions are released. Partitions the runtime does
// not hold are ignored. Other partitions keep running throughout.
func (rt *Runtime) Revoke(parts ...TopicPartition) error {
	return rt.release(rt.take(parts), nil)
}

// Shutdown revokes every partition the runtime holds, waiting at most
// ShutdownTimeout for the records in flight. Past it, it cancels their
// contexts, commits what finished and returns an error wrapping
// ErrShutdownTimeout that names the records left.
func (rt *Runtime) Shutdown() error {
	rt.mu.Lock()
	all := make([]TopicPartition, 0, len(rt.parts))
	for id := range rt.parts {
		all = append(all, TopicPartition{id.topic, id.partition})
	}
	rt.mu.Unlock()
	timeout := time.NewTimer(rt.cfg.ShutdownTimeout)
	defer timeout.Stop()
	return rt.release(rt.take(all), timeout.C)
}

// Close stops the runtime: it cancels the contexts of any handler still
// running and stops the handler pool. Call it after the last Revoke or
// Shutdown.
func (rt *Runtime) Close() {
	rt.cancel()
	rt.committer.stop()
	rt.pool.close()
}

// take marks the partitions revoked, so no record of theirs starts from now.
func (rt *Runtime) take(ids []TopicPartition) []*partition {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var ps []*partition
	for _, id := range ids {
		if p, ok := rt.parts[partitionID{id.Topic, id.Partition}]; ok && !p.isRevoked() {
			ps = append(ps, p)
		}
	}
	for _, p := range ps {
		p.revoke()
	}
	return ps
}

func (rt *Runtime) release(ps []*partition, deadline <-chan time.Time) error {
	if len(ps) == 0 {
		return nil
	}
	began := time.Now()
	for _, p := range ps {
		rt.system.Root.Send(p.pid, &revoke{})
		time.AfterFunc(rt.cfg.LongRunningGrace, p.longCancel)
	}
	var leftover error
	if !waitDrained(ps, deadline) {
		// Out of time: cancel the handlers still running, give them a
		// moment to notice, and commit what finished.
		leftover = fmt.Errorf("%w after %v: %s", ErrShutdownTimeout, rt.cfg.ShutdownTimeout, describeInFlight(ps))
		rt.cancel()
		grace := time.NewTimer(min(time.Second, rt.cfg.ShutdownTimeout/10+10*time.Millisecond))
		waitDrained(ps, grace.C)
		grace.Stop()
		publishFinal(ps)
	}
	commitErr := rt.committer.commitFinal(ps)
	for _, p := range ps {
		p.released.Store(true)
		if rt.cfg.OnReleased != nil {
			rt.cfg.OnReleased(p.topic, p.partition)
		}
	}
	if commitErr != nil && deadline == nil {
		// A rebalance that outran the rebalance timeout loses the right
		// to commit; the next owner re-runs what was not committed.
		rt.cfg.Logger.Warn("ordo: final commit after revocation failed", "err", commitErr)
		commitErr = nil
	}
	for _, p := range ps {
		rt.system.Root.Stop(p.pid)
	}
	if deadline != nil {
		rt.awaitLongRunning(ps)
	}
	// The sources belong to the caller once release returns: no fetch may
	// still be using one.
	fetchersGone := time.NewTimer(10 * time.Second)
	defer fetchersGone.Stop()
	for _, p := range ps {
		select {
		case <-p.fetchDone:
		case <-fetchersGone.C:
			rt.cfg.Logger.Warn("ordo: a fetch did not stop within 10s of revocation", "topic", p.topic, "partition", p.partition)
		}
	}
	rt.mu.Lock()
	for _, p := range ps {
		delete(rt.parts, partitionID{p.topic, p.partition})
	}
	rt.mu.Unlock()
	for _, p := range ps {
		rt.cfg.Logger.Info("ordo: partition released", "topic", p.topic, "partition", p.partition,
			"generation", p.generation, "in_flight_at_revoke", p.inflightAtRevoke.Load(),
			"drain", p.drainTook(began), "committed", p.committed.Load())
	}
	return errors.Join(leftover, commitErr)
}

// awaitLongRunning lets a shutdown return only once the long-running records
// have stopped (their contexts end LongRunningGrace after the revocation),
// so that no job of a stopped server still runs or logs.
func (rt *Runtime) awaitLongRunning(ps []*partition) {
	deadline := time.Now().Add(rt.cfg.LongRunningGrace + time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		left := 0
		for _, p := range ps {
			left += p.longInFlight()
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			rt.cfg.Logger.Warn("ordo: long-running jobs still running after their grace period", "jobs", left,
				"grace", rt.cfg.LongRunningGrace)
			return
		}
		<-tick.C
	}
}

// publishFinal asks the supervisors of the partitions whose drain has not
// ended to publish their final state as it is, records still running
// included, so that the final commit carries what finished, not an older
// commit point.
func publishFinal(ps []*partition) {
	var waits []chan struct{}
	for _, p := range ps {
		select {
		case <-p.drained:
			continue
		default:
		}
		done := make(chan struct{})
		p.rt.system.Root.Send(p.pid, &publishFinalState{done: done})
		waits = append(waits, done)
	}
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for _, done := range waits {
		select {
		case <-done:
		case <-timeout.C:
			return
		}
	}
}

func waitDrained(ps []*partition, deadline <-chan time.Time) bool {
	for _, p := range ps {
		select {
		case <-p.drained:
		case <-deadline:
			return false
		}
	}
	return true
}

func describeInFlight(ps []*partition) string {
	var parts []string
	for _, p := range ps {
		keys := p.drainKeys.Load()
		if keys == nil {
			continue
		}
		type running struct {
			offset int64
			key    string
		}
		var rs []running
		for _, k := range *keys {
			if o := k.running.Load(); o > 0 {
				rs = append(rs, running{o - 1, k.key})
			}
		}
		slices.SortFunc(rs, func(a, b running) int { return cmp.Compare(a.offset, b.offset) })
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%s/%d@%d (key %q)", p.topic, p.partition, r.offset, r.key))
		}
	}
	if len(parts) == 0 {
		return "no record in flight; drain did not complete"
	}
	return fmt.Sprintf("%d records in flight: %s", len(parts), strings.Join(parts, ", "))
}

// virtualKey is the routing decision for one record.
func (rt *Runtime) virtualKey(r *kafka.Record) []byte { return rt.cfg.VirtualKey(r.Key, r.Headers) }

// PartitionStats is a snapshot of one assigned partition.
type PartitionStats struct {
	Topic     string
	Partition int
	// Buffered counts records held: fetched and not finished, waiting at
	// their key or running. It never exceeds MaxBuffered.
	Buffered int
	// PeakBuffered is the highest Buffered seen since the assignment.
	PeakBuffered int
	// Prefetched counts records fetched from Kafka and not yet handed to
	// their keys: the rest of the last fetch response, at most
	// FetchMaxBytes of records, waiting for Buffered to make room. A
	// partition's memory follows Buffered + Prefetched records.
	Prefetched int
	// Span is how far reading has gone past the committable offset:
	// finished records above a slower one count here, not in Buffered. It
	// stays within MaxSpan.
	Span int64
	// InFlight counts records whose handler is running.
	InFlight int
	// Keys counts the partition's live key actors (idle ones are
	// passivated).
	Keys int
	// Committed is the last offset committed since the assignment.
	Committed int64
	// HighWatermark is the partition's end offset as last fetched, or -1
	// when not known yet (or the source does not report it); for a
	// kafka.Claim, the last stable offset, since it reads committed
	// records only. Lag is HighWatermark - Committed.
	HighWatermark int64
	// Generation is the group generation the partition is held in.
	Generation int32
	// Revoked tells whether the partition's revocation (or shutdown
	// drain) has begun.
	Revoked bool
	// MetadataFallbacks counts the commits, since the assignment, whose
	// records finished above the committed offset did not fit Kafka's
	// commit metadata and were left out: a crash then re-runs them.
	MetadataFallbacks int64
}

// HighWatermarkSource is implemented by record sources that know their
// partition's end offset (kafka.Claim does), so that Stats can report lag.
type HighWatermarkSource interface {
	HighWatermark() int64
}

// PrefetchSource is implemented by record sources that hold fetched
// records between calls to Fetch (kafka.Claim does), so that Stats can
// report them.
type PrefetchSource interface {
	Prefetched() int
}

// Stats returns a snapshot of every partition the runtime holds, sorted by
// topic and partition.
func (rt *Runtime) Stats() []PartitionStats {
	rt.mu.Lock()
	out := make([]PartitionStats, 0, len(rt.parts))
	for _, p := range rt.parts {
		inflight, revoked := p.inFlight(), p.isRevoked()
		out = append(out, PartitionStats{
			Topic: p.topic, Partition: p.partition,
			Buffered:      int(p.outstanding.Load()),
			PeakBuffered:  int(p.peak.Load()),
			Prefetched:    p.prefetched(),
			Span:          p.span.Load(),
			InFlight:      inflight,
			Keys:          int(p.liveKeys.Load()),
			Committed:     p.committed.Load(),
			HighWatermark: p.highWatermark(),
			Generation:    p.generation,
			Revoked:       revoked,

			MetadataFallbacks: p.fallbacks.Load(),
		})
	}
	rt.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}
