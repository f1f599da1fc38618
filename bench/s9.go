package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// ScheduledArgs is S9's job: it knows when it was due.
type ScheduledArgs struct {
	Key   string `msgpack:"key"`
	RunAt int64  `msgpack:"run_at"` // Unix nanoseconds
}

func (ScheduledArgs) Kind() string                      { return "bench_scheduled" }
func (a ScheduledArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// s9 is scheduling: jobs due within one window over many keys, dispatched
// by one server; dispatch lateness is each job record's timestamp (written
// by the dispatcher's producer) minus its run-at. Then the memory of a
// process whose dispatcher indexes s9Pending jobs due in an hour: it runs
// in a child process, so that neither the producer nor an embedded broker
// counts towards its RSS.
func (b *bench) s9(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S9: scheduling, %d jobs due within %v over %d keys, %d partitions; then %d pending",
		sz.s9Jobs, sz.s9Window, sz.s9Keys, sz.s9Partitions, sz.s9Pending)
	late, err := b.s9Lateness(ctx)
	if err != nil {
		return err
	}
	rss, err := b.s9Memory(ctx)
	if err != nil {
		return err
	}
	q := func(p float64) time.Duration { return late[min(len(late)-1, int(p*float64(len(late))))] }
	p50, p99, worst := q(0.5), q(0.99), late[len(late)-1]
	const rssLimit = 256 << 20
	ok := p99 <= 200*time.Millisecond && rss <= rssLimit
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.record(result{
		Scenario: "S9",
		Measurement: fmt.Sprintf("%d jobs due within %v over %d keys (%d partitions); RSS with %d pending",
			sz.s9Jobs, sz.s9Window, sz.s9Keys, sz.s9Partitions, sz.s9Pending),
		Ordo: fmt.Sprintf("dispatch lateness p50 %.0f ms, p99 %.0f ms, max %.0f ms; peak RSS %.1f MB",
			ms(p50), ms(p99), ms(worst), mb(rss)),
		Baseline: "targets: p99 200 ms, RSS 256 MB",
		Ratio:    fmt.Sprintf("%.2f (p99 / 200 ms)", ms(p99)/200),
		Target:   "p99 ≤ 200 ms, RSS ≤ 256 MB",
		Met:      met(ok),
		Line: fmt.Sprintf("bench S9 jobs=%d window=%v: lateness_p50=%.0f ms lateness_p99=%.0f ms lateness_max=%.0f ms pending=%d peak_rss=%.1f MB limit=256 MB broker=%s ratio=%.2f",
			sz.s9Jobs, sz.s9Window, ms(p50), ms(p99), ms(worst), sz.s9Pending, mb(rss), b.target.Name, ms(p99)/200),
	})
	return nil
}

// s9Topic creates a job topic and its compacted schedules topic.
func (b *bench) s9Topic(ctx context.Context, label string) (string, error) {
	topic, err := b.newTopic(ctx, label, b.sizes.s9Partitions)
	if err != nil {
		return "", err
	}
	st := topic + jobs.DefaultScheduleSuffix
	if err := b.admin.CreateTopics(ctx, kafka.Topic{Name: st, Partitions: b.sizes.s9Partitions,
		Configs: map[string]string{"cleanup.policy": "compact"}}); err != nil {
		return "", err
	}
	b.mu.Lock()
	b.topics = append(b.topics, st)
	b.mu.Unlock()
	return topic, nil
}

// s9Lateness returns the dispatch lateness of every job, sorted.
func (b *bench) s9Lateness(ctx context.Context) ([]time.Duration, error) {
	sz := b.sizes
	topic, err := b.s9Topic(ctx, "s9")
	if err != nil {
		return nil, err
	}
	var ran atomic.Int64
	w := jobs.NewWorkers()
	if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[ScheduledArgs]) error {
		ran.Add(1)
		return nil
	})); err != nil {
		return nil, err
	}
	cfg := b.serverConfig(topic, 100, w)
	cfg.Schedules = jobs.SchedulesOn
	s, err := jobs.NewServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.Stop(stopCtx)
	}()
	select {
	case <-s.Ready():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	start := time.Now().Add(sz.s9Lead)
	step := sz.s9Window / time.Duration(sz.s9Jobs)
	err = b.enqueueParams(ctx, "S9", topic, sz.s9Jobs, func(i int) jobs.EnqueueParams {
		// Spread over the window, keys interleaved.
		return scheduledJob("key-"+strconv.Itoa(i%sz.s9Keys), start.Add(time.Duration((i*7919)%sz.s9Jobs)*step))
	})
	if err != nil {
		return nil, err
	}
	if time.Now().After(start) {
		return nil, fmt.Errorf("enqueueing took past the window's start (%v after it began); the lead is too short", sz.s9Lead)
	}
	deadline := start.Add(sz.s9Window + 2*time.Minute)
	for ran.Load() < int64(sz.s9Jobs) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d scheduled jobs ran by two minutes after the window", ran.Load(), sz.s9Jobs)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.s9ReadLateness(ctx, topic)
}

// s9ReadLateness reads the job topic: each record's timestamp, set when the
// dispatcher wrote it, minus the run-at in its args.
func (b *bench) s9ReadLateness(ctx context.Context, topic string) ([]time.Duration, error) {
	end, err := b.admin.EndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var late []time.Duration
	for p, last := range end {
		r, err := kafka.NewPartitionReader(kafka.ReaderConfig{Brokers: b.target.Brokers, Logger: b.logger}, topic, p, 0)
		if err != nil {
			return nil, err
		}
		for next := int64(0); next < last; {
			recs, n, err := r.Fetch(ctx, nil, 10_000)
			if err != nil {
				r.Close()
				return nil, err
			}
			for _, rec := range recs {
				var v envelope.View
				var a ScheduledArgs
				if err := envelope.DecodeView(rec.Value, &v); err != nil {
					r.Close()
					return nil, err
				}
				if err := msgpack.Unmarshal(v.Args, &a); err != nil {
					r.Close()
					return nil, err
				}
				late = append(late, rec.Time.Sub(time.Unix(0, a.RunAt)))
			}
			next = n
		}
		r.Close()
	}
	if len(late) == 0 {
		return nil, fmt.Errorf("no job in %s", topic)
	}
	slices.Sort(late)
	return late, nil
}

// s9Memory enqueues s9Pending jobs due in an hour and returns the peak RSS
// of a child process whose server has indexed them all.
// scheduledJob is an S9 job of key due at at, which it carries to measure
// its lateness.
func scheduledJob(key string, at time.Time) jobs.EnqueueParams {
	return jobs.EnqueueParams{Args: ScheduledArgs{Key: key, RunAt: at.UnixNano()}, Opts: []jobs.EnqueueOption{jobs.WithRunAt(at)}}
}

func (b *bench) s9Memory(ctx context.Context) (uint64, error) {
	sz := b.sizes
	topic, err := b.s9Topic(ctx, "s9-pending")
	if err != nil {
		return 0, err
	}
	due := time.Now().Add(time.Hour)
	err = b.enqueueParams(ctx, "S9 pending", topic, sz.s9Pending, func(i int) jobs.EnqueueParams {
		return scheduledJob("key-"+strconv.Itoa(i%sz.s9Keys), due.Add(time.Duration(i)*time.Millisecond))
	})
	if err != nil {
		return 0, err
	}
	res, err := b.runChild(ctx, childConfig{
		Label:   fmt.Sprintf("S9 pending=%d", sz.s9Pending),
		Brokers: b.target.Brokers, Topic: topic, Group: uniqueName("bench-s9"),
		Concurrency: 100, SchedulesPending: sz.s9Pending, Timeout: 10 * time.Minute,
	})
	if err != nil {
		return 0, err
	}
	b.progressf("bench S9 pending=%d: peak RSS %.1f MB, peak heap %.1f MB", sz.s9Pending, mb(res.PeakRSS), mb(res.PeakHeap))
	return res.PeakRSS, nil
}
