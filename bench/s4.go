package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// s4 measures memory while a slow handler works through a backlog: peak RSS
// and peak heap of a process that runs only the jobs.Server, sampled over a
// fixed window, for each backlog size. Each size tops up the same topic, so
// the backlog is produced once. The server runs in a child process so that
// neither the producer nor an embedded broker (which holds the whole backlog
// in memory) counts towards its RSS.
func (b *bench) s4(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S4: memory, backlogs %v over %d keys, %d partitions, %v jobs, c=%d, MaxBuffered %d, window %v",
		sz.s4Backlogs, sz.s4Keys, sz.s4Partitions, sz.s4Work, sz.s4Concurrency, sz.s4MaxBuf, sz.s4Window)
	topic, err := b.newTopic(ctx, "s4", sz.s4Partitions)
	if err != nil {
		return err
	}
	work := int(sz.s4Work / time.Microsecond)
	produced := 0
	var first childResult
	for i, backlog := range sz.s4Backlogs {
		from := produced
		err := b.enqueue(ctx, fmt.Sprintf("S4 backlog=%d", backlog), topic, backlog-from, func(i int) jobs.JobArgs {
			return SleepArgs{Key: "key-" + strconv.Itoa((from+i)%sz.s4Keys), Micros: work}
		})
		if err != nil {
			return err
		}
		produced = backlog
		res, err := b.runChild(ctx, childConfig{
			Label:   fmt.Sprintf("S4 backlog=%d", backlog),
			Brokers: b.target.Brokers, Topic: topic, Group: uniqueName("bench-s4"),
			Concurrency: sz.s4Concurrency, MaxBuffered: sz.s4MaxBuf, Window: sz.s4Window,
		})
		if err != nil {
			return fmt.Errorf("backlog %d: %w", backlog, err)
		}
		if i == 0 {
			first = res
		}
		bufBound := sz.s4MaxBuf * sz.s4Partitions
		b.progressf("bench S4 backlog=%d: peak RSS %.1f MB, peak heap %.1f MB, %d jobs done in %v, peak buffered %d (bound %d), peak live keys %d",
			backlog, mb(res.PeakRSS), mb(res.PeakHeap), res.Done, sz.s4Window, res.PeakBuffered, bufBound, res.PeakKeys)
		r := float64(res.PeakRSS) / float64(first.PeakRSS)
		const limit = 256 << 20
		ok := res.PeakRSS <= limit && r <= 1.2
		b.record(result{
			Scenario: "S4",
			Measurement: fmt.Sprintf("backlog=%d over %d keys (%d partitions, %v jobs, c=%d, %v window)",
				backlog, sz.s4Keys, sz.s4Partitions, sz.s4Work, sz.s4Concurrency, sz.s4Window),
			Ordo: fmt.Sprintf("peak RSS %.1f MB, heap %.1f MB (buffered ≤ %d, bound %d; live keys ≤ %d; %d jobs done)",
				mb(res.PeakRSS), mb(res.PeakHeap), res.PeakBuffered, bufBound, res.PeakKeys, res.Done),
			Baseline: fmt.Sprintf("limit 256 MB; RSS at backlog %d: %.1f MB", sz.s4Backlogs[0], mb(first.PeakRSS)),
			Ratio:    fmt.Sprintf("%.2f (RSS / RSS at %d)", r, sz.s4Backlogs[0]),
			Target:   "≤ 256 MB, flat (≤ 1.2)",
			Met:      met(ok),
			Line: fmt.Sprintf("bench S4 backlog=%d: peak_rss=%.1f MB heap=%.1f MB limit=256 MB broker=%s ratio=%.2f",
				backlog, mb(res.PeakRSS), mb(res.PeakHeap), b.target.Name, r),
		})
	}
	return nil
}

func mb(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
