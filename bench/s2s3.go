package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// s2 is Karafka's Virtual Partitions scenario: 1 ms jobs over many keys at
// several concurrency limits; the bound is concurrency × 1,000 jobs/s.
func (b *bench) s2(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S2: Karafka VP, %d jobs of %v, %d partitions, %d keys, concurrency %v",
		sz.s2Jobs, sz.s2Work, sz.s2Partitions, sz.s2Keys, sz.s2Concurrency)
	topic, err := b.newTopic(ctx, "s2", sz.s2Partitions)
	if err != nil {
		return err
	}
	work := int(sz.s2Work / time.Microsecond)
	err = b.enqueue(ctx, "S2", topic, sz.s2Jobs, func(i int) jobs.JobArgs {
		return SleepArgs{Key: "key-" + strconv.Itoa(i%sz.s2Keys), Micros: work}
	})
	if err != nil {
		return err
	}
	floor := timerFloor(slices.Repeat([]time.Duration{sz.s2Work}, 500))
	b.progressf("bench S2: timer floor %.2f: %v sleeps take %v back to back", floor, sz.s2Work,
		time.Duration(floor*float64(sz.s2Work)).Round(time.Microsecond))
	for _, c := range sz.s2Concurrency {
		m := newMeter(sz.s2Jobs)
		bound := float64(c) * float64(time.Second/sz.s2Work)
		limit := 2*time.Duration(float64(sz.s2Jobs)/bound*float64(time.Second)) + time.Minute
		what := fmt.Sprintf("S2 c=%d", c)
		if err := b.runServer(ctx, what, b.serverConfig(topic, c, sleepWorker(m)), m, limit); err != nil {
			return err
		}
		got := m.rate()
		r := got / bound
		pool := sleepPool(c, min(sz.s2Jobs, 400*c), sz.s2Work)
		b.progressf("bench S2 c=%d: ordo %.0f jobs/s; %d goroutines sleeping %v per job, no Kafka: %.0f jobs/s",
			c, got, c, sz.s2Work, pool)
		target, metStr := "—", "—"
		switch c {
		case 14:
			target, metStr = "≥ 0.9", met(r >= 0.9)
		case 100:
			target, metStr = "≥ 0.8", met(r >= 0.8)
		}
		b.mu.Lock()
		b.s2Points = append(b.s2Points, point{X: float64(c), Ordo: got, Bound: bound, GoOnly: pool})
		b.mu.Unlock()
		b.record(result{
			Scenario: "S2",
			Measurement: fmt.Sprintf("c=%d (%d × %v jobs, %d keys, %d partitions; timer floor %.2f)",
				c, sz.s2Jobs, sz.s2Work, sz.s2Keys, sz.s2Partitions, floor),
			Ordo:     fmt.Sprintf("%.0f jobs/s", got),
			Baseline: fmt.Sprintf("bound %.0f jobs/s; goroutine pool without Kafka %.0f jobs/s", bound, pool),
			Ratio:    fmt.Sprintf("%.2f", r),
			Target:   target,
			Met:      metStr,
			Line: fmt.Sprintf("bench S2 c=%d: ordo=%.0f jobs/s bound=%.0f broker=%s ratio=%.2f",
				c, got, bound, b.target.Name, r),
		})
	}
	return nil
}

// s3 is Confluent Parallel Consumer's scenario: one partition, jobs sleeping
// uniformly 0–5 ms, concurrency 100, a growing number of keys; the bound is
// jobs × 2.5 ms / min(keys, concurrency).
func (b *bench) s3(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S3: Parallel Consumer, %d jobs of 0–%v, 1 partition, concurrency %d, keys %v",
		sz.s3Jobs, sz.s3MaxWork, sz.s3Concurrency, sz.s3Keys)
	maxMicros := int(sz.s3MaxWork / time.Microsecond)
	sample := rand.New(rand.NewPCG(3, 3))
	sleeps := make([]time.Duration, 400)
	for i := range sleeps {
		sleeps[i] = time.Duration(sample.IntN(maxMicros+1)) * time.Microsecond
	}
	floor := timerFloor(sleeps)
	b.progressf("bench S3: timer floor %.2f: 0–%v sleeps take %.2f× as long back to back", floor, sz.s3MaxWork, floor)
	for _, keys := range sz.s3Keys {
		topic, err := b.newTopic(ctx, "s3", 1)
		if err != nil {
			return err
		}
		// The same sleeps at every key count, so the runs differ only in
		// their keys.
		rng := rand.New(rand.NewPCG(5, 5))
		err = b.enqueue(ctx, fmt.Sprintf("S3 keys=%d", keys), topic, sz.s3Jobs, func(i int) jobs.JobArgs {
			return SleepArgs{Key: "key-" + strconv.Itoa(i%keys), Micros: rng.IntN(maxMicros + 1)}
		})
		if err != nil {
			return err
		}
		m := newMeter(sz.s3Jobs)
		bound := float64(sz.s3Jobs) * (sz.s3MaxWork / 2).Seconds() / float64(min(keys, sz.s3Concurrency))
		limit := time.Duration(3*bound*float64(time.Second)) + time.Minute
		what := fmt.Sprintf("S3 keys=%d", keys)
		if err := b.runServer(ctx, what, b.serverConfig(topic, sz.s3Concurrency, sleepWorker(m)), m, limit); err != nil {
			return err
		}
		got := m.elapsed().Seconds()
		r := got / bound
		b.mu.Lock()
		b.s3Points = append(b.s3Points, point{X: float64(keys), Ordo: got, Bound: bound, GoOnly: bound * floor})
		b.mu.Unlock()
		b.record(result{
			Scenario: "S3",
			Measurement: fmt.Sprintf("keys=%d (%d × 0–%v jobs, 1 partition, c=%d; timer floor %.2f)",
				keys, sz.s3Jobs, sz.s3MaxWork, sz.s3Concurrency, floor),
			Ordo:     fmt.Sprintf("%.2f s", got),
			Baseline: fmt.Sprintf("bound %.2f s; × timer floor %.2f s", bound, bound*floor),
			Ratio:    fmt.Sprintf("%.2f", r),
			Target:   "≤ 1.2",
			Met:      met(r <= 1.2),
			Line: fmt.Sprintf("bench S3 keys=%d: ordo=%.2f s bound=%.2f s broker=%s ratio=%.2f",
				keys, got, bound, b.target.Name, r),
		})
	}
	return nil
}
