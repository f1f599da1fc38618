package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// s2 is Karafka's Virtual Partitions scenario: 1 ms jobs over many keys at
// several concurrency limits; the bound is concurrency × 1,000 jobs/s. Right
// after ordo's run at each concurrency, reader_pool runs the same jobs from
// the same topic: a kafka-go Reader feeding a pool of as many goroutines, no
// key order, committing what finished; ordo is held to it, so the ratio is
// the cost of keeping order. Then the same number of goroutines sleep
// through the same jobs without Kafka: the rate Go's timers allow, which at
// c=100 is well below the bound.
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
		if err := b.runServer(ctx, what, b.serverConfig(topic, c, sleepWorker(m, time.Sleep)), m, limit); err != nil {
			return err
		}
		got := m.rate()
		rm := newMeter(sz.s2Jobs)
		if err := b.runReaderPool(ctx, what+" reader_pool", topic, c, rm, limit, sleepHandler(rm)); err != nil {
			return fmt.Errorf("reader_pool: %w", err)
		}
		readerPool := rm.rate()
		pool := sleepPool(c, min(sz.s2Jobs, 400*c), sz.s2Work)
		b.progressf("bench S2 c=%d: ordo %.0f jobs/s; kafka-go Reader feeding %d goroutines, no key order: %.0f jobs/s; %d goroutines sleeping %v per job, no Kafka: %.0f jobs/s",
			c, got, c, readerPool, c, sz.s2Work, pool)
		r, against := got/readerPool, "ordo/reader_pool"
		target, metStr := "—", "—"
		switch c {
		case 14:
			target, metStr = "≥ 0.95", met(r >= 0.95)
		case 100:
			target, metStr = "≥ 0.9", met(r >= 0.9)
		}
		b.mu.Lock()
		b.s2Points = append(b.s2Points, point{X: float64(c), Ordo: got, Bound: bound, GoOnly: pool})
		b.mu.Unlock()
		b.record(result{
			Scenario: "S2",
			Measurement: fmt.Sprintf("c=%d (%d × %v jobs, %d keys, %d partitions; timer floor %.2f); ratio = %s",
				c, sz.s2Jobs, sz.s2Work, sz.s2Keys, sz.s2Partitions, floor, against),
			Ordo: fmt.Sprintf("%.0f jobs/s", got),
			Baseline: fmt.Sprintf("reader_pool (kafka-go Reader feeding %d goroutines, no key order) %.0f jobs/s; bound %.0f jobs/s; goroutine pool without Kafka %.0f jobs/s",
				c, readerPool, bound, pool),
			Ratio:  fmt.Sprintf("%.2f (%s); ordo/pool %.2f", r, against, got/pool),
			Target: target,
			Met:    metStr,
			Line: fmt.Sprintf("bench S2 c=%d: ordo=%.0f jobs/s reader_pool=%.0f jobs/s bound=%.0f pool=%.0f broker=%s ratio=%.2f",
				c, got, readerPool, bound, pool, b.target.Name, r),
		})
	}
	return nil
}

// s3 is Confluent Parallel Consumer's scenario: one partition, jobs sleeping
// uniformly 0–5 ms, concurrency 100, a growing number of keys; the bound is
// jobs × 2.5 ms / min(keys, concurrency), and ordo is held to the bound
// times the timer floor. Then the blocking variant: the same jobs at some
// key counts with a handler that blocks its OS thread, against a goroutine
// per key doing the same without Kafka.
func (b *bench) s3(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S3: Parallel Consumer, %d jobs of 0–%v, 1 partition, concurrency %d, keys %v, blocking at keys %v",
		sz.s3Jobs, sz.s3MaxWork, sz.s3Concurrency, sz.s3Keys, sz.s3BlockingKeys)
	maxMicros := int(sz.s3MaxWork / time.Microsecond)
	sample := rand.New(rand.NewPCG(3, 3))
	floorSleeps := make([]time.Duration, 400)
	for i := range floorSleeps {
		floorSleeps[i] = time.Duration(sample.IntN(maxMicros+1)) * time.Microsecond
	}
	floor := timerFloor(floorSleeps)
	b.progressf("bench S3: timer floor %.2f: 0–%v sleeps take %.2f× as long back to back", floor, sz.s3MaxWork, floor)
	// The same sleeps at every key count, so the runs differ only in their
	// keys (job i has key i mod keys).
	rng := rand.New(rand.NewPCG(5, 5))
	sleeps := make([]time.Duration, sz.s3Jobs)
	for i := range sleeps {
		sleeps[i] = time.Duration(rng.IntN(maxMicros+1)) * time.Microsecond
	}
	bound := func(keys int) float64 {
		return float64(sz.s3Jobs) * (sz.s3MaxWork / 2).Seconds() / float64(min(keys, sz.s3Concurrency))
	}
	// topics holds each key count's jobs, for the blocking variant to
	// read again with a group of its own.
	topics := map[int]string{}
	enqueued := func(keys int) (string, error) {
		if t, ok := topics[keys]; ok {
			return t, nil
		}
		topic, err := b.newTopic(ctx, "s3", 1)
		if err != nil {
			return "", err
		}
		err = b.enqueue(ctx, fmt.Sprintf("S3 keys=%d", keys), topic, sz.s3Jobs, func(i int) jobs.JobArgs {
			return SleepArgs{Key: "key-" + strconv.Itoa(i%keys), Micros: int(sleeps[i] / time.Microsecond)}
		})
		topics[keys] = topic
		return topic, err
	}
	for _, keys := range sz.s3Keys {
		topic, err := enqueued(keys)
		if err != nil {
			return err
		}
		m := newMeter(sz.s3Jobs)
		bound := bound(keys)
		limit := time.Duration(3*bound*float64(time.Second)) + time.Minute
		what := fmt.Sprintf("S3 keys=%d", keys)
		if err := b.runServer(ctx, what, b.serverConfig(topic, sz.s3Concurrency, sleepWorker(m, time.Sleep)), m, limit); err != nil {
			return err
		}
		got := m.elapsed().Seconds()
		r := got / (bound * floor)
		b.mu.Lock()
		b.s3Points = append(b.s3Points, point{X: float64(keys), Ordo: got, Bound: bound, GoOnly: bound * floor})
		b.mu.Unlock()
		b.record(result{
			Scenario: "S3",
			Measurement: fmt.Sprintf("keys=%d (%d × 0–%v jobs, 1 partition, c=%d; timer floor %.2f)",
				keys, sz.s3Jobs, sz.s3MaxWork, sz.s3Concurrency, floor),
			Ordo:     fmt.Sprintf("%.2f s", got),
			Baseline: fmt.Sprintf("bound %.2f s; × timer floor %.2f s", bound, bound*floor),
			Ratio:    fmt.Sprintf("%.2f (ordo / (bound × floor))", r),
			Target:   "≤ 1.05",
			Met:      met(r <= 1.05),
			Line: fmt.Sprintf("bench S3 keys=%d: ordo=%.2f s bound=%.2f s floor=%.2f broker=%s ratio=%.2f",
				keys, got, bound, floor, b.target.Name, r),
		})
	}
	if !blockingSleepWorks {
		b.progressf("bench S3: blocking variant skipped: it needs nanosleep(2) as Linux has it")
		return nil
	}
	for _, keys := range sz.s3BlockingKeys {
		topic, err := enqueued(keys)
		if err != nil {
			return err
		}
		m := newMeter(sz.s3Jobs)
		bound := bound(keys)
		limit := time.Duration(3*bound*float64(time.Second)) + time.Minute
		what := fmt.Sprintf("S3 blocking keys=%d", keys)
		if err := b.runServer(ctx, what, b.serverConfig(topic, sz.s3Concurrency, sleepWorker(m, blockingSleep)), m, limit); err != nil {
			return err
		}
		got := m.elapsed().Seconds()
		goroutines := keyGoroutines(keys, sz.s3Concurrency, sleeps, blockingSleep).Seconds()
		b.progressf("bench S3 blocking keys=%d: ordo %.2f s; a goroutine per key, %d slots, no Kafka: %.2f s",
			keys, got, sz.s3Concurrency, goroutines)
		r := got / goroutines
		b.mu.Lock()
		b.s3BlockingPoints = append(b.s3BlockingPoints, point{X: float64(keys), Ordo: got, Bound: bound, GoOnly: goroutines})
		b.mu.Unlock()
		b.record(result{
			Scenario: "S3",
			Measurement: fmt.Sprintf("blocking keys=%d (the same jobs; the handler sleeps in nanosleep(2), blocking its thread)",
				keys),
			Ordo:     fmt.Sprintf("%.2f s", got),
			Baseline: fmt.Sprintf("a goroutine per key under %d slots, no Kafka: %.2f s; bound %.2f s", sz.s3Concurrency, goroutines, bound),
			Ratio:    fmt.Sprintf("%.2f (ordo/goroutines)", r),
			Target:   "≤ 1.1",
			Met:      met(r <= 1.1),
			Line: fmt.Sprintf("bench S3 blocking keys=%d: ordo=%.2f s goroutines=%.2f s broker=%s ratio=%.2f",
				keys, got, goroutines, b.target.Name, r),
		})
	}
	return nil
}

// keyGoroutines runs S3's jobs as a hand-written program that keeps order
// per key would, without Kafka: a goroutine per key runs its key's jobs in
// order (job i has key i mod keys), each job holding one of c slots while it
// sleeps. It returns how long all took.
func keyGoroutines(keys, c int, sleeps []time.Duration, sleep func(time.Duration)) time.Duration {
	perKey := make([][]time.Duration, keys)
	for i, d := range sleeps {
		perKey[i%keys] = append(perKey[i%keys], d)
	}
	slots := make(chan struct{}, c)
	var wg sync.WaitGroup
	began := time.Now()
	for _, ds := range perKey {
		if len(ds) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range ds {
				slots <- struct{}{}
				sleep(d)
				<-slots
			}
		}()
	}
	wg.Wait()
	return time.Since(began)
}
