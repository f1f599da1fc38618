package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/kafka"
)

// The defaults of the status reports (Config.StatusTopic,
// Config.StatusInterval).
const (
	DefaultStatusTopic    = "__ordo_status"
	DefaultStatusInterval = 5 * time.Second
)

// tally counts what a server's jobs did, by kind, and keeps its most recent
// errors, for the status reports. Its kinds are fixed when the server is
// built, so counting a run is a map read and an atomic add.
type tally struct {
	byKind map[string]*kindTally

	mu     sync.Mutex
	errors [status.MaxErrors]status.JobError
	next   int // where the next error goes in errors
	count  int // errors held, up to len(errors)
}

// kindTally counts one kind's jobs. Successful runs, the hot path, are
// counted in stripes picked by offset, each on its own cache line, so that
// the pool's goroutines seldom add to the same one.
type kindTally struct {
	processed                     [tallyStripes]paddedCount
	failed, retried, deadLettered atomic.Int64
}

const tallyStripes = 8

type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

func (k *kindTally) processedTotal() int64 {
	var n int64
	for i := range k.processed {
		n += k.processed[i].n.Load()
	}
	return n
}

// unknownKind counts the jobs of kinds without a worker, so that bad input
// cannot grow a report without bound.
const unknownKind = "unknown"

func newTally(ws *Workers) *tally {
	t := &tally{byKind: make(map[string]*kindTally, len(ws.byKind)+1)}
	for kind := range ws.byKind {
		t.byKind[kind] = &kindTally{}
	}
	t.byKind[unknownKind] = &kindTally{}
	return t
}

func (t *tally) of(kind string) *kindTally {
	if k := t.byKind[kind]; k != nil {
		return k
	}
	return t.byKind[unknownKind]
}

func (t *tally) ran(r *kafka.Record, kind string, err error) {
	if t == nil {
		return
	}
	if err == nil {
		t.of(kind).processed[r.Offset&(tallyStripes-1)].n.Add(1)
	} else {
		t.of(kind).failed.Add(1)
	}
}

func (t *tally) retried(kind string) {
	if t != nil {
		t.of(kind).retried.Add(1)
	}
}

func (t *tally) deadLettered(kind string) {
	if t != nil {
		t.of(kind).deadLettered.Add(1)
	}
}

// failure keeps the error of one failed run (or of a record that could not
// run), never the job's args.
func (t *tally) failure(r *kafka.Record, kind, jobID string, attempt int, msg string, deadLettered bool) {
	if t == nil {
		return
	}
	e := status.JobError{
		At: time.Now().UTC(), Kind: kind, JobID: jobID, Key: string(r.Key[:min(len(r.Key), 200)]),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Attempt: attempt,
		Message: status.TruncateMessage(msg), DeadLettered: deadLettered,
	}
	t.mu.Lock()
	t.errors[t.next] = e
	t.next = (t.next + 1) % len(t.errors)
	t.count = min(t.count+1, len(t.errors))
	t.mu.Unlock()
}

// recentErrors returns the errors held, newest first.
func (t *tally) recentErrors() []status.JobError {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]status.JobError, 0, t.count)
	for i := 1; i <= t.count; i++ {
		out = append(out, t.errors[(t.next-i+len(t.errors))%len(t.errors)])
	}
	return out
}

// statusReporter publishes the server's report every interval to the status
// topic, creating the topic when it is missing. Reports are best effort: a
// failed write is logged and the next period tries again; jobs never wait
// for it.
type statusReporter struct {
	server   *Server
	producer *kafka.Producer
	admin    *kafka.Admin
	topic    string
	interval time.Duration
	// replicationFactor is for creating the topic.
	replicationFactor int
	key               []byte
	tally             *tally
	log               *slog.Logger

	base    status.Report // what does not change between reports
	prev    map[string]status.KindCounts
	prevAt  time.Time
	topicOK bool
	failing bool
	// create: Config.CreateTopics is set, so a missing status topic is
	// created like any other; without it ordo creates no topic, and
	// reports wait for the topic to exist.
	create bool

	// mu orders start against stop, which Server.Stop may call while
	// Start runs.
	mu    sync.Mutex
	ended bool // stop was called
	// ctx ends the reports (and a publish under way) when stop cancels
	// it; nil until start.
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}
}

func newStatusReporter(s *Server, t *tally) *statusReporter {
	cfg := s.cfg
	member := cfg.InstanceID
	host, _ := os.Hostname()
	if member == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		member = host + "-" + hex.EncodeToString(b[:])
	}
	rf, create := 1, cfg.CreateTopics != nil
	if create {
		rf = cfg.CreateTopics.ReplicationFactor
	}
	return &statusReporter{
		server: s, producer: s.dlq, admin: kafka.NewSecureAdmin(cfg.Brokers, cfg.Security),
		topic: cfg.StatusTopic, interval: cfg.StatusInterval, replicationFactor: rf, create: create,
		key: status.Key(cfg.Group, member), tally: t, log: cfg.Logger,
		base: status.Report{
			Version: status.Version, Group: cfg.Group, Member: member, Host: host, PID: os.Getpid(),
			OrdoVersion: ordoVersion(), IntervalMS: cfg.StatusInterval.Milliseconds(),
			Topics: cfg.Topics, DeadLetterTopic: cfg.DeadLetterTopic,
		},
	}
}

// ordoVersion is the version of the ordo module linked into the binary.
func ordoVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	const module = "github.com/ordo-go/ordo"
	if info.Main.Path == module {
		return info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == module {
			return d.Version
		}
	}
	return "unknown"
}

func (r *statusReporter) start() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.ctx != nil {
		return
	}
	r.base.Started = time.Now().UTC()
	r.prevAt = r.base.Started
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.stopped = make(chan struct{})
	go r.run()
}

// stop ends the reports and deletes the member's report from the topic (a
// tombstone), so readers see it leave at once rather than go stale.
func (r *statusReporter) stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	if r.ctx == nil {
		return // never started
	}
	r.cancel()
	<-r.stopped
	if !r.topicOK {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := r.producer.ProduceSync(ctx, kafka.Message{Topic: r.topic, Key: r.key}); err != nil {
		r.log.Warn("ordo: removing the status report failed; readers will show this server as gone", "topic", r.topic, "err", err)
	}
}

func (r *statusReporter) run() {
	defer close(r.stopped)
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		r.publish()
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *statusReporter) publish() {
	ctx, cancel := context.WithTimeout(r.ctx, max(r.interval, 5*time.Second))
	defer cancel()
	err := r.ensureTopic(ctx)
	if err == nil {
		var value []byte
		if value, err = status.Encode(r.report(time.Now().UTC())); err == nil {
			_, err = r.producer.ProduceSync(ctx, kafka.Message{Topic: r.topic, Key: r.key, Value: value})
		}
	}
	switch {
	case err != nil && !r.failing:
		r.failing = true
		r.log.Warn("ordo: publishing the status report failed; trying again every interval", "topic", r.topic,
			"interval", r.interval, "err", err)
	case err == nil && r.failing:
		r.failing = false
		r.log.Info("ordo: status reports published again", "topic", r.topic)
	}
}

// errStatusTopicMissing: the status topic does not exist and Config.CreateTopics
// is not set, so ordo does not create it.
var errStatusTopicMissing = errors.New("the status topic does not exist; create it (one partition, cleanup.policy=compact,delete), set jobs.Config.CreateTopics, or set jobs.Config.DisableStatus")

// ensureTopic checks that the status topic exists and, when CreateTopics is
// set, creates it when it is missing: one partition, compacted (each member's
// latest report is what counts), and deleted after a day, so that members
// that crashed do not stay forever.
func (r *statusReporter) ensureTopic(ctx context.Context) error {
	if r.topicOK {
		return nil
	}
	have, err := r.admin.Partitions(ctx, r.topic)
	if err != nil {
		return err
	}
	if _, ok := have[r.topic]; !ok {
		if !r.create {
			return fmt.Errorf("%q: %w", r.topic, errStatusTopicMissing)
		}
		err := r.admin.CreateTopics(ctx, kafka.Topic{Name: r.topic, Partitions: 1, ReplicationFactor: r.replicationFactor,
			Configs: map[string]string{
				"cleanup.policy":      "compact,delete",
				"retention.ms":        "86400000",
				"segment.ms":          "3600000",
				"min.insync.replicas": "1",
			}})
		if err != nil && !errors.Is(err, kafka.ErrTopicExists) {
			return err
		}
		r.log.Info("ordo: created the status topic", "topic", r.topic)
	}
	r.topicOK = true
	return nil
}

// report builds the report at now: positions from the runtime's stats,
// counts and rates from the tally.
func (r *statusReporter) report(now time.Time) *status.Report {
	rep := r.base
	rep.At = now
	rep.Rebalances = r.server.Rebalances()
	for _, p := range r.server.Stats() {
		lag := int64(-1)
		if p.HighWatermark >= 0 && p.Committed >= 0 {
			lag = max(0, p.HighWatermark-p.Committed)
		}
		rep.Partitions = append(rep.Partitions, status.Partition{
			Topic: p.Topic, Partition: p.Partition, Committed: p.Committed, HighWatermark: p.HighWatermark, Lag: lag,
			Buffered: p.Buffered, Prefetched: p.Prefetched, InFlight: p.InFlight, KeyActors: p.Keys, Generation: p.Generation,
		})
	}
	secs := now.Sub(r.prevAt).Seconds()
	rate := func(now, before int64) float64 {
		if secs <= 0 {
			return 0
		}
		return float64(now-before) / secs
	}
	next := make(map[string]status.KindCounts, len(r.tally.byKind))
	for _, kind := range slices.Sorted(maps.Keys(r.tally.byKind)) {
		k := r.tally.byKind[kind]
		c := status.KindCounts{Kind: kind, Processed: k.processedTotal(), Failed: k.failed.Load(),
			Retried: k.retried.Load(), DeadLettered: k.deadLettered.Load()}
		if kind == unknownKind && c == (status.KindCounts{Kind: kind}) {
			continue
		}
		p := r.prev[kind]
		c.ProcessedRate = rate(c.Processed, p.Processed)
		c.FailedRate = rate(c.Failed, p.Failed)
		c.RetriedRate = rate(c.Retried, p.Retried)
		c.DeadLetteredRate = rate(c.DeadLettered, p.DeadLettered)
		next[kind] = c
		rep.Kinds = append(rep.Kinds, c)
	}
	r.prev, r.prevAt = next, now
	rep.Errors = r.tally.recentErrors()
	return &rep
}
