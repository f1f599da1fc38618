package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/kafka"
)

// RetryPolicy decides what happens after a record's handler failed for the
// attempt-th time (attempts count from 1): run it again after delay, or give
// up (retry false), after which the record counts as finished. While a record
// waits for its retry its key waits too; other keys keep running.
type RetryPolicy func(attempt int, err error) (delay time.Duration, retry bool)

// Config configures a Runtime. Zero values take the defaults noted.
type Config struct {
	// Handler does the work of one record. Required.
	Handler Handler
	// Concurrency is how many records may run at once in the process,
	// across all partitions and keys. Default 100, which suits IO-bound
	// work; CPU-bound work wants about the number of cores.
	Concurrency int
	// MaxBuffered bounds the records fetched and not yet finished per
	// partition; at the bound fetching pauses until the keys catch up.
	// Default 1000.
	MaxBuffered int
	// VirtualKey computes a record's virtual-partition key. Default
	// KeyOfRecord (the message key).
	VirtualKey VirtualKeyFunc
	// MaxVirtualPartitions, when positive, reduces the virtual keys of each
	// partition onto that many slots (Karafka's max_partitions). Default 0:
	// every distinct key is its own virtual partition.
	MaxVirtualPartitions int
	// IdleTimeout passivates a key's actor after this long without records.
	// Default 30 s.
	IdleTimeout time.Duration
	// CommitInterval is the longest a finished record waits to be
	// committed when no fetched batch completes. Default 1 s.
	CommitInterval time.Duration
	// ShutdownTimeout bounds how long a shutdown waits for records in
	// flight before cancelling their contexts. Default 30 s.
	ShutdownTimeout time.Duration
	// Retry decides about failed records. Default: retry forever, waiting
	// 1 s, doubling to 30 s (Karafka's pause defaults).
	Retry RetryPolicy
	// LongRunning tells which records run in long-running mode: they may
	// run longer than the group's rebalance timeout; a revocation does not
	// wait for them but cancels their context after LongRunningGrace, and
	// does not commit them. Default: none.
	LongRunning func(r *kafka.Record) bool
	// LongRunningGrace is how long a long-running record may go on after
	// its partition was revoked before its context is cancelled. Default
	// 5 s.
	LongRunningGrace time.Duration
	// KeyActorStrategy supervises key actors. Handler panics never reach it
	// (they become record errors); it guards against faults in the actor
	// itself. Default: protoactor's one-for-one restart.
	KeyActorStrategy actor.SupervisorStrategy
	// System is the protoactor ActorSystem to spawn into, for services that
	// already run one. Default: a system of ordo's own.
	System *actor.ActorSystem
	// Logger receives the runtime's logs. Default slog.Default().
	Logger *slog.Logger
}

// ErrShutdownTimeout is returned (wrapped, with what was left) when records
// were still running when the shutdown timeout passed.
var ErrShutdownTimeout = errors.New("ordo: shutdown timeout passed with records in flight")

func (c Config) withDefaults() (Config, error) {
	if c.Handler == nil {
		return c, errors.New("actors: Config.Handler is nil")
	}
	for _, s := range []struct {
		name string
		v    int64
	}{
		{"Concurrency", int64(c.Concurrency)},
		{"MaxBuffered", int64(c.MaxBuffered)},
		{"MaxVirtualPartitions", int64(c.MaxVirtualPartitions)},
		{"IdleTimeout", int64(c.IdleTimeout)},
		{"CommitInterval", int64(c.CommitInterval)},
		{"ShutdownTimeout", int64(c.ShutdownTimeout)},
		{"LongRunningGrace", int64(c.LongRunningGrace)},
	} {
		if s.v < 0 {
			return c, fmt.Errorf("actors: Config.%s is negative (%d)", s.name, s.v)
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 100
	}
	if c.MaxBuffered == 0 {
		c.MaxBuffered = 1000
	}
	if c.VirtualKey == nil {
		c.VirtualKey = KeyOfRecord
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.LongRunningGrace == 0 {
		c.LongRunningGrace = 5 * time.Second
	}
	if c.Retry == nil {
		c.Retry = defaultRetry
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.System == nil {
		logger := c.Logger
		c.System = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return logger.With("lib", "protoactor")
		}))
	}
	return c, nil
}

func defaultRetry(attempt int, _ error) (time.Duration, bool) {
	d := time.Second << min(attempt-1, 5)
	return min(d, 30*time.Second), true
}

// Runtime runs records through partition supervisors and key actors. One
// Runtime serves all partitions of a process and holds the process-wide
// concurrency limit.
type Runtime struct {
	cfg     Config
	reducer *Reducer
	slots   chan struct{}

	// ctx is the parent of every handler's context; cancelling it is the
	// last resort of a shutdown that ran out of time.
	ctx    context.Context
	cancel context.CancelFunc

	supervisorOpts []actor.PropsOption

	mu    sync.Mutex
	parts map[*partitionState]struct{}
}

// NewRuntime validates cfg and returns a Runtime.
func NewRuntime(cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rt := &Runtime{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.Concurrency),
		parts: map[*partitionState]struct{}{},
	}
	if cfg.MaxVirtualPartitions > 0 {
		r := NewReducer(cfg.MaxVirtualPartitions)
		rt.reducer = &r
	}
	if cfg.KeyActorStrategy != nil {
		rt.supervisorOpts = append(rt.supervisorOpts, actor.WithSupervisor(cfg.KeyActorStrategy))
	}
	rt.ctx, rt.cancel = context.WithCancel(context.Background())
	return rt, nil
}

// System is the ActorSystem the runtime spawns into.
func (rt *Runtime) System() *actor.ActorSystem { return rt.cfg.System }

// virtualKey is the routing decision for one record.
func (rt *Runtime) virtualKey(r *kafka.Record) string {
	k := rt.cfg.VirtualKey(r.Key, r.Headers)
	if rt.reducer != nil {
		k = rt.reducer.Reduce(k)
	}
	return k
}

// Run processes the assignments of one generation. It returns after the
// generation ended (gen.Done), its key actors drained (each finishes only its
// record in flight; what they buffered is dropped, not run and not
// committed), and the watermarks were committed. For a shutdown it waits at
// most ShutdownTimeout, then cancels the handlers' contexts, commits what
// finished and returns an error wrapping ErrShutdownTimeout that names what
// was left.
func (rt *Runtime) Run(gen Generation, assignments []Assignment) error {
	root := rt.cfg.System.Root
	c := newCommitter(gen, rt.cfg.CommitInterval, rt.cfg.Logger)
	sups := make([]*actor.PID, 0, len(assignments))
	states := make([]*partitionState, 0, len(assignments))
	for _, a := range assignments {
		p := newPartitionState(rt, a, gen.GenerationID(), rt.cfg.MaxBuffered)
		c.add(p, a.Start)
		states = append(states, p)
		sups = append(sups, root.Spawn(actor.PropsFromProducer(func() actor.Actor {
			return newPartitionSupervisor(rt, p, a.Source, c.kick)
		}, rt.supervisorOpts...)))
	}
	rt.track(states, true)
	defer rt.track(states, false)
	go c.run()

	<-gen.Done()
	stopping := gen.Stopping()
	// Mark revocation here, not only when each supervisor gets to its
	// message: from this moment no record may start.
	for _, p := range states {
		p.revoke()
		time.AfterFunc(rt.cfg.LongRunningGrace, p.longCancel)
	}
	for _, pid := range sups {
		root.Send(pid, &revoke{})
	}
	var leftover error
	if !waitAll(states, rt.shutdownDeadline(stopping)) {
		// Out of time: cancel the handlers still running, give them a
		// moment to notice, and commit what finished.
		leftover = fmt.Errorf("%w after %v: %s", ErrShutdownTimeout, rt.cfg.ShutdownTimeout, describeInFlight(states))
		rt.cancel()
		waitAll(states, time.After(rt.cancelGrace()))
	}
	commitErr := c.stop()
	for _, pid := range sups {
		root.Stop(pid)
	}
	// The sources belong to the generation: once Run returns the caller
	// may close them, so no fetch may still be using one.
	fetchersGone := time.After(10 * time.Second)
	for _, p := range states {
		select {
		case <-p.fetchDone:
		case <-fetchersGone:
			rt.cfg.Logger.Warn("ordo: a fetch did not stop within 10s of revocation", "topic", p.topic, "partition", p.partition)
		}
	}
	if commitErr != nil && !stopping {
		// A rebalance that outran the rebalance timeout loses the right
		// to commit; the next owner re-runs what was not committed.
		rt.cfg.Logger.Warn("ordo: final commit after revocation failed", "err", commitErr)
		commitErr = nil
	}
	return errors.Join(leftover, commitErr)
}

func (rt *Runtime) shutdownDeadline(stopping bool) <-chan time.Time {
	if !stopping {
		return nil // a revocation waits for its records in flight
	}
	return time.After(rt.cfg.ShutdownTimeout)
}

func (rt *Runtime) cancelGrace() time.Duration {
	return min(time.Second, rt.cfg.ShutdownTimeout/10+10*time.Millisecond)
}

// Close cancels the contexts of any handler still running. Call it when the
// process no longer needs the runtime.
func (rt *Runtime) Close() { rt.cancel() }

func waitAll(states []*partitionState, deadline <-chan time.Time) bool {
	for _, p := range states {
		select {
		case <-p.drained:
		case <-deadline:
			return false
		}
	}
	return true
}

func describeInFlight(states []*partitionState) string {
	var parts []string
	for _, p := range states {
		p.mu.Lock()
		offsets := make([]int64, 0, len(p.inflight))
		for o := range p.inflight {
			offsets = append(offsets, o)
		}
		slices.Sort(offsets)
		for _, o := range offsets {
			parts = append(parts, fmt.Sprintf("%s/%d@%d (key %q)", p.topic, p.partition, o, p.inflight[o]))
		}
		p.mu.Unlock()
	}
	if len(parts) == 0 {
		return "no record in flight; drain did not complete"
	}
	return fmt.Sprintf("%d records in flight: %s", len(parts), strings.Join(parts, ", "))
}

func (rt *Runtime) track(states []*partitionState, add bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, p := range states {
		if add {
			rt.parts[p] = struct{}{}
		} else {
			delete(rt.parts, p)
		}
	}
}

// PartitionStats is a snapshot of one assigned partition.
type PartitionStats struct {
	Topic     string
	Partition int
	// Buffered counts records fetched and not yet finished (in flight,
	// queued at their key, or finished behind an unfinished one).
	Buffered int
	// PeakBuffered is the highest Buffered seen in this generation.
	PeakBuffered int
	// InFlight counts records whose handler is running.
	InFlight int
	// Keys counts the partition's live key actors (idle ones are
	// passivated).
	Keys int
	// Committed is the last offset committed in this generation.
	Committed int64
	// HighWatermark is the partition's end offset as last fetched, or -1
	// when not known yet (or the source does not report it). Lag is
	// HighWatermark - Committed.
	HighWatermark int64
	// Generation is the group generation the partition is held in.
	Generation int32
	// Revoked tells whether the partition's revocation (or shutdown
	// drain) has begun.
	Revoked bool
}

// HighWatermarkSource is implemented by record sources that know their
// partition's end offset (kafka.Claim does), so that Stats can report lag.
type HighWatermarkSource interface {
	HighWatermark() int64
}

// NewKeyContext returns a context that carries the state of one key, as a
// handler's context inside a KeyActor does, but without a runtime: for
// calling handlers directly in unit tests. Every handler given it (or a
// context derived from it) sees the same KeyState; Attempt is 1, Revoked
// is false, VirtualKey is key.
func NewKeyContext(parent context.Context, key string) context.Context {
	k := &KeyActor{key: key, p: &partitionState{revokedCh: make(chan struct{})}}
	k.attempt.Store(1)
	return context.WithValue(parent, keyActorKey{}, k)
}

// Stats returns a snapshot of every partition the runtime holds, sorted by
// topic and partition.
func (rt *Runtime) Stats() []PartitionStats {
	rt.mu.Lock()
	out := make([]PartitionStats, 0, len(rt.parts))
	for p := range rt.parts {
		p.mu.Lock()
		inflight, revoked := len(p.inflight), p.revoked
		p.mu.Unlock()
		out = append(out, PartitionStats{
			Topic: p.topic, Partition: p.partition,
			Buffered:      int(p.outstanding.Load()),
			PeakBuffered:  int(p.peak.Load()),
			InFlight:      inflight,
			Keys:          int(p.liveKeys.Load()),
			Committed:     p.committed.Load(),
			HighWatermark: p.highWatermark(),
			Generation:    p.generation,
			Revoked:       revoked,
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
