package status

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
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
)

// Source is what a report reads of its server at each period.
type Source interface {
	// Rebalances counts the assignments the server received.
	Rebalances() int64
	// Stats are the partitions it holds.
	Stats() []actors.PartitionStats
}

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	Producer *kafka.Producer
	Admin    *kafka.Admin
	Source   Source
	Tally    *Tally
	Log      *slog.Logger
	Topic    string
	Interval time.Duration
	// Create: a missing topic is created, with ReplicationFactor; without
	// it reports wait for the topic to exist.
	Create            bool
	ReplicationFactor int
	// Group, InstanceID, Topics and DeadLetterTopic are the server's, as
	// its reports name them.
	Group, InstanceID string
	Topics            []string
	DeadLetterTopic   string
}

// Reporter publishes a server's report every interval to the status topic,
// creating the topic when it is missing. Reports are best effort: a failed
// write is logged and the next period tries again; jobs never wait for it.
// A nil Reporter reports nothing.
type Reporter struct {
	producer *kafka.Producer
	admin    *kafka.Admin
	source   Source
	topic    string
	interval time.Duration
	// replicationFactor is for creating the topic.
	replicationFactor int
	key               []byte
	tally             *Tally
	log               *slog.Logger

	base    Report // what does not change between reports
	prev    map[string]KindCounts
	prevAt  time.Time
	topicOK bool
	failing bool
	create  bool

	// mu orders Start against Stop, which the server's Stop may call
	// while its Start runs.
	mu    sync.Mutex
	ended bool // Stop was called
	// ctx ends the reports (and a publish under way) when Stop cancels
	// it; nil until Start.
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}
}

// NewReporter names the member (its InstanceID, else its host and a random
// suffix); it does not contact Kafka.
func NewReporter(cfg ReporterConfig) *Reporter {
	member := cfg.InstanceID
	host, _ := os.Hostname()
	if member == "" {
		var b [3]byte
		_, _ = rand.Read(b[:])
		member = host + "-" + hex.EncodeToString(b[:])
	}
	return &Reporter{
		producer: cfg.Producer, admin: cfg.Admin, source: cfg.Source,
		topic: cfg.Topic, interval: cfg.Interval, replicationFactor: cfg.ReplicationFactor, create: cfg.Create,
		key: Key(cfg.Group, member), tally: cfg.Tally, log: cfg.Log,
		base: Report{
			Version: Version, Group: cfg.Group, Member: member, Host: host, PID: os.Getpid(),
			OrdoVersion: ordoVersion(), IntervalMS: cfg.Interval.Milliseconds(),
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

// Start begins the reports; after Stop it does nothing.
func (r *Reporter) Start() {
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

// Stop ends the reports and deletes the member's report from the topic (a
// tombstone), so readers see it leave at once rather than go stale.
func (r *Reporter) Stop() {
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

func (r *Reporter) run() {
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

func (r *Reporter) publish() {
	ctx, cancel := context.WithTimeout(r.ctx, max(r.interval, 5*time.Second))
	defer cancel()
	err := r.ensureTopic(ctx)
	if err == nil {
		var value []byte
		if value, err = Encode(r.report(time.Now().UTC())); err == nil {
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

// errTopicMissing: the status topic does not exist and it is not to be
// created. Worded for the user of jobs.Server, who sees it logged.
var errTopicMissing = errors.New("the status topic does not exist; create it (one partition, cleanup.policy=compact,delete), set jobs.Config.CreateTopics, or set jobs.Config.DisableStatus")

// ensureTopic checks that the status topic exists and, when create is set,
// creates it when it is missing: one partition, compacted (each member's
// latest report is what counts), and deleted after a day, so that members
// that crashed do not stay forever.
func (r *Reporter) ensureTopic(ctx context.Context) error {
	if r.topicOK {
		return nil
	}
	have, err := r.admin.Partitions(ctx, r.topic)
	if err != nil {
		return err
	}
	if _, ok := have[r.topic]; !ok {
		if !r.create {
			return fmt.Errorf("%q: %w", r.topic, errTopicMissing)
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
func (r *Reporter) report(now time.Time) *Report {
	rep := r.base
	rep.At = now
	rep.Rebalances = r.source.Rebalances()
	for _, p := range r.source.Stats() {
		lag := int64(-1)
		if p.HighWatermark >= 0 && p.Committed >= 0 {
			lag = max(0, p.HighWatermark-p.Committed)
		}
		rep.Partitions = append(rep.Partitions, Partition{
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
	next := make(map[string]KindCounts, len(r.tally.byKind))
	for _, kind := range slices.Sorted(maps.Keys(r.tally.byKind)) {
		k := r.tally.byKind[kind]
		c := KindCounts{Kind: kind, Processed: k.processedTotal(), Failed: k.failed.Load(),
			Retried: k.retried.Load(), DeadLettered: k.deadLettered.Load()}
		if kind == unknownKind && c == (KindCounts{Kind: kind}) {
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
