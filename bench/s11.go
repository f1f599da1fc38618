package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// BulkArgs is S11's job: one row of a key's bulk write.
type BulkArgs struct {
	Key string `msgpack:"key"`
}

func (BulkArgs) Kind() string                      { return "bench_bulk" }
func (a BulkArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// seqCheck counts per-key order violations: a job that finished at or below
// an offset its key finished before (the enqueuers write in parallel, so a
// key's order is its records' offset order).
type seqCheck struct {
	mu         sync.Mutex
	last       map[string]int64
	violations int
}

func newSeqCheck() *seqCheck { return &seqCheck{last: map[string]int64{}} }

func (c *seqCheck) finished(key string, offset int64) {
	c.mu.Lock()
	if last, ok := c.last[key]; ok && offset <= last {
		c.violations++
	}
	c.last[key] = offset
	c.mu.Unlock()
}

// s11 is the per-key batch scenario: jobs whose work is a bulk write, 1 ms
// per call plus 10 µs per row, run by a worker that writes one row per call
// and by a BatchWorker that writes a key's queued rows in one call, both
// with the same concurrency. The first concurrency, 10, is the scenario's:
// the sleeps stand for a database, which takes a pool's worth of calls at
// once, not a hundred; the second shows where the batch run meets the CPU.
// Per-key order is checked in every run.
func (b *bench) s11(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S11: per-key batches, %d jobs, %d keys, %d partitions, calls of %v + %v per job, concurrency %v",
		sz.s11Jobs, sz.s11Keys, sz.s11Partitions, sz.s11Call, sz.s11PerJob, sz.s11Concurrency)
	topic, err := b.newTopic(ctx, "s11", sz.s11Partitions)
	if err != nil {
		return err
	}
	err = b.enqueue(ctx, "S11", topic, sz.s11Jobs, func(i int) jobs.JobArgs {
		return BulkArgs{Key: "key-" + strconv.Itoa(i%sz.s11Keys)}
	})
	if err != nil {
		return err
	}
	for _, c := range sz.s11Concurrency {
		if err := b.s11At(ctx, topic, c); err != nil {
			return err
		}
	}
	return nil
}

// s11At runs S11's two workers at concurrency c and records the row.
func (b *bench) s11At(ctx context.Context, topic string, c int) error {
	sz := b.sizes
	limit := func(rate float64) time.Duration {
		return 3*time.Duration(float64(sz.s11Jobs)/rate*float64(time.Second)) + time.Minute
	}
	cost := func(rows int) time.Duration { return sz.s11Call + time.Duration(rows)*sz.s11PerJob }

	perJob, perJobCheck := newMeter(sz.s11Jobs), newSeqCheck()
	ws := jobs.NewWorkers()
	if err := jobs.AddWorker(ws, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[BulkArgs]) error {
		perJob.start()
		time.Sleep(cost(1))
		perJobCheck.finished(job.Args.Key, job.Offset)
		perJob.done()
		return nil
	})); err != nil {
		return err
	}
	perJobBound := float64(c) / cost(1).Seconds()
	cfg := b.serverConfig(topic, c, ws)
	cfg.MaxBuffered = sz.s11MaxBuffered
	if err := b.runServer(ctx, fmt.Sprintf("S11 c=%d per-job", c), cfg, perJob, limit(perJobBound/2)); err != nil {
		return err
	}

	batched, batchedCheck := newMeter(sz.s11Jobs), newSeqCheck()
	var calls, rows sizeCount
	ws = jobs.NewWorkers()
	if err := jobs.AddBatchWorker(ws, jobs.WorkBatchFunc(func(ctx context.Context, batch []*jobs.Job[BulkArgs]) error {
		batched.start()
		time.Sleep(cost(len(batch)))
		for _, job := range batch {
			batchedCheck.finished(job.Args.Key, job.Offset)
			batched.done()
		}
		calls.add(1)
		rows.add(len(batch))
		return nil
	})); err != nil {
		return err
	}
	cfg = b.serverConfig(topic, c, ws)
	cfg.MaxBuffered = sz.s11MaxBuffered
	if err := b.runServer(ctx, fmt.Sprintf("S11 c=%d batch", c), cfg, batched, limit(perJobBound)); err != nil {
		return err
	}
	perRate, batchRate := perJob.rate(), batched.rate()
	violations := perJobCheck.violations + batchedCheck.violations
	if violations > 0 {
		return fmt.Errorf("S11 c=%d: %d jobs ran out of their key's order (per-job %d, batch %d)",
			c, violations, perJobCheck.violations, batchedCheck.violations)
	}
	avg := float64(rows.get()) / float64(max(calls.get(), 1))
	r := batchRate / perRate
	b.progressf("bench S11 c=%d: per-job %.0f jobs/s (bound %.0f); batch %.0f jobs/s in %d calls of %.1f jobs on average",
		c, perRate, perJobBound, batchRate, calls.get(), avg)
	target, metStr := "—", "—"
	if c == sz.s11Concurrency[0] {
		target, metStr = "≥ 10, per-key order held", met(r >= 10)
	}
	b.record(result{
		Scenario: "S11",
		Measurement: fmt.Sprintf("c=%d (%d jobs, %d keys, %d partitions, MaxBuffered %d; a call costs %v + %v per job); ratio = batch/per-job",
			c, sz.s11Jobs, sz.s11Keys, sz.s11Partitions, sz.s11MaxBuffered, sz.s11Call, sz.s11PerJob),
		Ordo:     fmt.Sprintf("BatchWorker %.0f jobs/s (%.1f jobs per call)", batchRate, avg),
		Baseline: fmt.Sprintf("per-job Worker %.0f jobs/s (bound %.0f)", perRate, perJobBound),
		Ratio:    fmt.Sprintf("%.2f", r),
		Target:   target,
		Met:      metStr,
		Line: fmt.Sprintf("bench S11 c=%d: batch=%.0f jobs/s per_job=%.0f jobs/s jobs_per_call=%.1f order_violations=%d broker=%s ratio=%.2f",
			c, batchRate, perRate, avg, violations, b.target.Name, r),
	})
	return nil
}

// sizeCount is a counter for the batch worker's calls and rows.
type sizeCount struct {
	mu sync.Mutex
	n  int
}

func (c *sizeCount) add(n int) { c.mu.Lock(); c.n += n; c.mu.Unlock() }
func (c *sizeCount) get() int  { c.mu.Lock(); defer c.mu.Unlock(); return c.n }
