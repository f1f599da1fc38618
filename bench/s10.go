package main

import (
	"context"
	"fmt"
	"github.com/ordo-go/ordo/internal/enqueue"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/jobs"
)

// EnqueueArgs is S10's job. Nothing runs it: S10 measures the enqueue alone.
type EnqueueArgs struct {
	Key string `msgpack:"key"`
	N   int    `msgpack:"n"`
}

func (EnqueueArgs) Kind() string                      { return "bench_enqueue" }
func (a EnqueueArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// s10Warmup calls go before each measurement and are not counted: the first
// calls look the topic up, dial the partitions' leaders and, on a real
// broker, meet freshly created partitions. Twenty keyed calls reach all
// three partitions but for a chance of one in a thousand.
const s10Warmup = 20

// s10 is enqueue latency and throughput: jobs.Client.Enqueue, one job per
// call and waiting for every in-sync replica, against a kafka-go Writer
// writing the same records one per call, tuned for latency (sequential) and
// for batching (concurrent).
func (b *bench) s10(ctx context.Context) error {
	if err := b.s10Sequential(ctx); err != nil {
		return fmt.Errorf("sequential: %w", err)
	}
	if err := b.s10Concurrent(ctx); err != nil {
		return fmt.Errorf("concurrent: %w", err)
	}
	return nil
}

func s10Job(i int) EnqueueArgs { return EnqueueArgs{Key: "key-" + strconv.Itoa(i%1_000), N: i} }

// s10Sender sends the i-th job of a measurement, one job per call.
type s10Sender struct {
	send  func(ctx context.Context, i int) error
	close func() error
}

// s10Ordo enqueues with a jobs.Client into a topic of its own.
func (b *bench) s10Ordo(ctx context.Context, label string) (s10Sender, error) {
	topic, err := b.newTopic(ctx, "s10-"+label+"-ordo", b.sizes.s10Partitions)
	if err != nil {
		return s10Sender{}, err
	}
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.target.Brokers, Topic: topic, Logger: b.logger})
	if err != nil {
		return s10Sender{}, err
	}
	return s10Sender{
		send: func(ctx context.Context, i int) error {
			_, err := client.Enqueue(ctx, s10Job(i))
			return err
		},
		close: client.Close,
	}, nil
}

// s10Writer writes with a kafka-go Writer into a topic of its own the
// records Enqueue would write (the same code as Enqueue: the same key, envelope and
// headers), partitioned by murmur2 as ordo's producer does. The n records
// are built before the clock starts, so the baseline pays only for the
// writing.
func (b *bench) s10Writer(ctx context.Context, label string, n, batchSize int, batchTimeout time.Duration) (s10Sender, error) {
	topic, err := b.newTopic(ctx, "s10-"+label+"-writer", b.sizes.s10Partitions)
	if err != nil {
		return s10Sender{}, err
	}
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		m, _, err := enqueue.Prepare(topic, s10Job(i), &enqueue.Options{}, time.Now().UTC(), nil)
		if err != nil {
			return s10Sender{}, err
		}
		msgs[i] = kafkago.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers}
	}
	tr := &kafkago.Transport{}
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(b.target.Brokers...),
		Balancer:     &kafkago.Murmur2Balancer{},
		BatchSize:    batchSize,
		BatchTimeout: batchTimeout,
		RequiredAcks: kafkago.RequireAll,
		Transport:    tr,
	}
	return s10Sender{
		send: func(ctx context.Context, i int) error { return w.WriteMessages(ctx, msgs[i]) },
		close: func() error {
			err := w.Close()
			tr.CloseIdleConnections()
			return err
		},
	}, nil
}

func (s s10Sender) warmUp(ctx context.Context) error {
	for i := range s10Warmup {
		if err := s.send(ctx, i); err != nil {
			return fmt.Errorf("warm-up call %d: %w", i, err)
		}
	}
	return nil
}

// s10Sequential times single calls. ordo and the writer take turns, one call
// each, the first of the pair alternating, so that a noisy neighbour slows
// both alike and neither always runs in the other's wake.
func (b *bench) s10Sequential(ctx context.Context) error {
	sz := b.sizes
	n := sz.s10Sequential
	b.progressf("bench S10 sequential: %d Enqueue calls one at a time, taking turns with a kafka-go Writer (BatchSize 1, BatchTimeout 1 µs) writing the same records; %d partitions, RequireAll",
		n, sz.s10Partitions)
	b.s10RecordSize()
	ordo, err := b.s10Ordo(ctx, "seq")
	if err != nil {
		return err
	}
	defer ordo.close()
	writer, err := b.s10Writer(ctx, "seq", s10Warmup+n, 1, time.Microsecond)
	if err != nil {
		return err
	}
	defer writer.close()
	sides := [2]s10Sender{ordo, writer}
	names := [2]string{"ordo", "writer"}
	for k, s := range sides {
		if err := s.warmUp(ctx); err != nil {
			return fmt.Errorf("%s: %w", names[k], err)
		}
	}
	lat := [2][]time.Duration{make([]time.Duration, 0, n), make([]time.Duration, 0, n)}
	var done atomic.Int64
	stop := every(2*time.Second, func() { b.progressf("bench S10 sequential: %d/%d calls each", done.Load(), n) })
	defer stop()
	for i := s10Warmup; i < s10Warmup+n; i++ {
		for k := range 2 {
			side := (i + k) % 2
			began := time.Now()
			if err := sides[side].send(ctx, i); err != nil {
				return fmt.Errorf("%s: call %d: %w", names[side], i-s10Warmup, err)
			}
			lat[side] = append(lat[side], time.Since(began))
		}
		done.Add(1)
	}
	stop()
	for k := range lat {
		slices.Sort(lat[k])
	}
	op50, op99 := msf(percentile(lat[0], 50)), msf(percentile(lat[0], 99))
	wp50, wp99 := msf(percentile(lat[1], 50)), msf(percentile(lat[1], 99))
	b.progressf("bench S10 sequential: ordo p50 %.2f ms p99 %.2f ms max %.2f ms; writer p50 %.2f ms p99 %.2f ms max %.2f ms",
		op50, op99, msf(lat[0][n-1]), wp50, wp99, msf(lat[1][n-1]))
	r := op50 / wp50
	b.record(result{
		Scenario: "S10",
		Measurement: fmt.Sprintf("sequential Enqueue latency: %d calls one at a time, in turn with the baseline (%d partitions, RequireAll)",
			n, sz.s10Partitions),
		Ordo: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", op50, op99),
		Baseline: fmt.Sprintf("kafka-go Writer (BatchSize 1, BatchTimeout 1 µs, RequireAll), the same records one per call: p50 %.2f ms, p99 %.2f ms",
			wp50, wp99),
		Ratio:  fmt.Sprintf("%.2f (ordo p50 / writer p50)", r),
		Target: "≤ 1.5",
		Met:    met(r <= 1.5),
		Line: fmt.Sprintf("bench S10 sequential: ordo_p50=%.2f ms ordo_p99=%.2f ms writer_p50=%.2f ms writer_p99=%.2f ms broker=%s ratio=%.2f",
			op50, op99, wp50, wp99, b.target.Name, r),
	})
	return nil
}

// s10Concurrent measures throughput: goroutines each sending one job per
// call until the total is reached, ordo first, then the writer.
func (b *bench) s10Concurrent(ctx context.Context) error {
	sz := b.sizes
	n, g := sz.s10Concurrent, sz.s10Goroutines
	b.progressf("bench S10 concurrent: %d goroutines calling Enqueue until %d jobs are enqueued, then a kafka-go Writer (BatchSize 1000, BatchTimeout 5 ms) the same way; %d partitions, RequireAll",
		g, n, sz.s10Partitions)
	ordo, err := b.s10Ordo(ctx, "conc")
	if err != nil {
		return err
	}
	ordoRate, err := b.s10Throughput(ctx, "ordo", ordo, n, g)
	ordo.close()
	if err != nil {
		return fmt.Errorf("ordo: %w", err)
	}
	writer, err := b.s10Writer(ctx, "conc", s10Warmup+n, 1000, 5*time.Millisecond)
	if err != nil {
		return err
	}
	writerRate, err := b.s10Throughput(ctx, "writer", writer, n, g)
	writer.close()
	if err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	r := ordoRate / writerRate
	b.record(result{
		Scenario:    "S10",
		Measurement: fmt.Sprintf("concurrent Enqueue throughput: %d goroutines, one job per call, %d jobs (%d partitions, RequireAll)", g, n, sz.s10Partitions),
		Ordo:        fmt.Sprintf("%.0f jobs/s", ordoRate),
		Baseline:    fmt.Sprintf("kafka-go Writer (BatchSize 1000, BatchTimeout 5 ms, RequireAll), %d goroutines, the same records one per call: %.0f jobs/s", g, writerRate),
		Ratio:       fmt.Sprintf("%.2f (ordo/writer)", r),
		Target:      "≥ 0.9",
		Met:         met(r >= 0.9),
		Line: fmt.Sprintf("bench S10 concurrent: ordo=%.0f jobs/s writer=%.0f jobs/s broker=%s ratio=%.2f",
			ordoRate, writerRate, b.target.Name, r),
	})
	return nil
}

// s10Throughput warms s up, then has g goroutines send jobs until n are
// sent, and returns jobs/s from the first call to the last return.
func (b *bench) s10Throughput(ctx context.Context, what string, s s10Sender, n, g int) (float64, error) {
	if err := s.warmUp(ctx); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next, sent atomic.Int64
	next.Store(s10Warmup)
	var failed sync.Once
	var ferr error
	stop := every(2*time.Second, func() {
		b.progressf("bench S10 concurrent %s: %d/%d enqueued", what, sent.Load(), n)
	})
	defer stop()
	var wg sync.WaitGroup
	began := time.Now()
	for range g {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(s10Warmup+n); i = next.Add(1) - 1 {
				if err := s.send(ctx, int(i)); err != nil {
					failed.Do(func() { ferr = fmt.Errorf("call %d: %w", i-s10Warmup, err) })
					cancel()
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	d := time.Since(began)
	stop()
	if ferr != nil {
		return 0, ferr
	}
	rate := float64(n) / d.Seconds()
	b.progressf("bench S10 concurrent %s: %d jobs in %v (%.0f jobs/s)", what, n, d.Round(10*time.Millisecond), rate)
	return rate, nil
}

// s10RecordSize prints what one record of S10 weighs, the same on both
// sides.
func (b *bench) s10RecordSize() {
	m, _, err := enqueue.Prepare("t", s10Job(s10Warmup), &enqueue.Options{}, time.Now().UTC(), nil)
	if err != nil {
		return
	}
	hdr := 0
	for _, h := range m.Headers {
		hdr += len(h.Key) + len(h.Value)
	}
	b.progressf("bench S10: each record has a %d B key, a %d B value and %d headers of %d B, for ordo and the writer alike",
		len(m.Key), len(m.Value), len(m.Headers), hdr)
}

// percentile is the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// msf is d in milliseconds, with fractions.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// every calls report every d until stop is called; stop may be called more
// than once.
func every(d time.Duration, report func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report()
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
