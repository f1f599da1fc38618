package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// s6 is key churn: every job has a key of its own, so a server that keeps
// anything per key it has seen grows without end. The jobs are streamed: the
// server (in a child process, as in S4) starts while the producer is still
// enqueueing, and reads its peak RSS when the first mark's jobs are done and
// when all are. ratio = RSS at the last mark / RSS at the first.
func (b *bench) s6(ctx context.Context) error {
	sz := b.sizes
	keys := sz.s6Marks[len(sz.s6Marks)-1]
	b.progressf("bench S6: key churn, %d distinct keys with one no-op job each, streamed, %d partitions, c=%d; memory at %v jobs done",
		keys, sz.s6Partitions, sz.s6Concurrency, sz.s6Marks)
	topic, err := b.newTopic(ctx, "s6", sz.s6Partitions)
	if err != nil {
		return err
	}
	began := time.Now()
	produceCtx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	type produced struct {
		err error
		at  time.Duration
	}
	enqueued := make(chan produced, 1)
	go func() {
		err := b.enqueue(produceCtx, "S6", topic, keys, func(i int) jobs.JobArgs {
			return NoopArgs{Key: "key-" + strconv.Itoa(i), N: i}
		})
		enqueued <- produced{err, time.Since(began)}
	}()
	marks := make([]int64, len(sz.s6Marks))
	for i, n := range sz.s6Marks {
		marks[i] = int64(n)
	}
	res, err := b.runChild(ctx, childConfig{
		Label:   "S6",
		Brokers: b.target.Brokers, Topic: topic, Group: uniqueName("bench-s6"),
		Concurrency: sz.s6Concurrency, Marks: marks, Timeout: sz.s6Timeout,
	})
	if err != nil {
		stopProducing()
		<-enqueued
		return err
	}
	prod := <-enqueued
	if prod.err != nil {
		return prod.err
	}
	if len(res.Marks) != len(marks) {
		return fmt.Errorf("the child read its memory at %d of %d marks", len(res.Marks), len(marks))
	}
	first, last := res.Marks[0], res.Marks[len(res.Marks)-1]
	b.progressf("bench S6: the producer finished %v after it started; the server had %d done %v after it started and all %d after %v (%.0f jobs/s between the marks)",
		prod.at.Round(100*time.Millisecond), first.Done, first.At.Round(100*time.Millisecond), last.Done,
		last.At.Round(100*time.Millisecond), float64(last.Done-first.Done)/(last.At-first.At).Seconds())
	var at []string
	for _, m := range res.Marks {
		b.progressf("bench S6: at %d done: VmHWM %.1f MB, heap in use %.1f MB (peak %.1f MB), peak live keys %d",
			m.Done, mb(m.RSS), mb(m.Heap), mb(m.PeakHeap), m.PeakKeys)
		at = append(at, fmt.Sprintf("at %s done: RSS %.1f MB, heap %.1f MB, live keys ≤ %d",
			count(m.Done), mb(m.RSS), mb(m.Heap), m.PeakKeys))
	}
	r := float64(last.RSS) / float64(first.RSS)
	b.record(result{
		Scenario: "S6",
		Measurement: fmt.Sprintf("key churn: %d distinct keys, one no-op job each, streamed (%d partitions, c=%d; producer done after %v, server after %v)",
			keys, sz.s6Partitions, sz.s6Concurrency, prod.at.Round(time.Second), last.At.Round(time.Second)),
		Ordo:     fmt.Sprintf("%s; %s", at[0], at[len(at)-1]),
		Baseline: fmt.Sprintf("RSS at %s done: %.1f MB", count(first.Done), mb(first.RSS)),
		Ratio:    fmt.Sprintf("%.2f (RSS at %s / at %s)", r, count(last.Done), count(first.Done)),
		Target:   "≤ 1.2",
		Met:      met(r <= 1.2),
		Line: fmt.Sprintf("bench S6 keys=%d: rss_%s=%.1f MB rss_%s=%.1f MB broker=%s ratio=%.2f",
			keys, count(first.Done), mb(first.RSS), count(last.Done), mb(last.RSS), b.target.Name, r),
	})
	return nil
}

// count writes a round number short: 200000 as 200k, 2000000 as 2m.
func count(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.FormatInt(n/1_000_000, 10) + "m"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.FormatInt(n/1_000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}
