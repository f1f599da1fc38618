package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/jobs"
)

// LatencyArgs is S15's job: it sleeps for Micros microseconds and carries
// when it was enqueued (Sent, Unix nanoseconds, read right before its
// Enqueue call). Sent 0 marks the warm-up job, which only says that the
// consumer runs jobs.
type LatencyArgs struct {
	Key    string `msgpack:"key"`
	Micros int    `msgpack:"us"`
	Sent   int64  `msgpack:"sent"`
}

func (LatencyArgs) Kind() string                      { return "bench_latency" }
func (a LatencyArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// s15 is end-to-end latency under a steady load: jobs enqueued one per
// Enqueue call at half the capacity measured first, from enqueue to the
// start of the job, for ordo and for reader_pool (S2's unordered kafka-go
// Reader feeding a pool of the same size), each on a topic of its own.
func (b *bench) s15(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S15: latency, %v jobs over %d keys, %d partitions, c=%d, %v at half the capacity",
		sz.s15Work, sz.s15Keys, sz.s15Partitions, sz.s15Concurrency, sz.s15Duration)
	work := int(sz.s15Work / time.Microsecond)
	job := func(i int) LatencyArgs { return LatencyArgs{Key: "key-" + strconv.Itoa(i%sz.s15Keys), Micros: work} }

	// Capacity: both consumers through the same backlog; the load is half
	// of the slower, so that neither runs behind.
	topic, err := b.newTopic(ctx, "s15-capacity", sz.s15Partitions)
	if err != nil {
		return err
	}
	if err := b.enqueue(ctx, "S15 capacity", topic, sz.s15CapacityJobs, func(i int) jobs.JobArgs { return job(i) }); err != nil {
		return err
	}
	limit := 5 * time.Minute
	om := newMeter(sz.s15CapacityJobs)
	if err := b.runServer(ctx, "S15 capacity ordo", b.serverConfig(topic, sz.s15Concurrency, latencyWorker(newLatencyLog(om))), om, limit); err != nil {
		return err
	}
	rm := newMeter(sz.s15CapacityJobs)
	if err := b.runReaderPool(ctx, "S15 capacity reader_pool", topic, sz.s15Concurrency, rm, limit, latencyHandler(newLatencyLog(rm))); err != nil {
		return fmt.Errorf("reader_pool: %w", err)
	}
	rate := min(om.rate(), rm.rate()) / 2
	b.progressf("bench S15: capacity: ordo %.0f jobs/s, reader_pool %.0f jobs/s; load %.0f jobs/s", om.rate(), rm.rate(), rate)

	ordo, err := b.s15Run(ctx, "S15 ordo", rate, job, func(ctx context.Context, topic string, l *latencyLog) (func() error, error) {
		s, err := jobs.NewServer(b.serverConfig(topic, sz.s15Concurrency, latencyWorker(l)))
		if err == nil {
			err = s.Start(ctx)
		}
		if err != nil {
			return nil, err
		}
		return func() error {
			stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return s.Stop(stopCtx)
		}, nil
	})
	if err != nil {
		return err
	}
	pool, err := b.s15Run(ctx, "S15 reader_pool", rate, job, func(ctx context.Context, topic string, l *latencyLog) (func() error, error) {
		return b.startReaderPool(ctx, topic, sz.s15Concurrency, latencyHandler(l)).stop, nil
	})
	if err != nil {
		return fmt.Errorf("reader_pool: %w", err)
	}
	r := float64(ordo.p99) / float64(pool.p99)
	b.record(result{
		Scenario: "S15",
		Measurement: fmt.Sprintf("latency, enqueue to start: one Enqueue per job at %.0f jobs/s (half the capacity measured first) for %v, %v jobs over %d keys, %d partitions, c=%d",
			rate, sz.s15Duration, sz.s15Work, sz.s15Keys, sz.s15Partitions, sz.s15Concurrency),
		Ordo:     fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms (enqueued at %.0f jobs/s)", msf(ordo.p50), msf(ordo.p99), msf(ordo.max), ordo.sentRate),
		Baseline: fmt.Sprintf("reader_pool p50 %.2f ms, p99 %.2f ms, max %.2f ms (enqueued at %.0f jobs/s)", msf(pool.p50), msf(pool.p99), msf(pool.max), pool.sentRate),
		Ratio:    fmt.Sprintf("%.2f (ordo p99 / reader_pool p99)", r),
		Target:   "≤ 1.5, ordo p50 ≤ 5 ms",
		Met:      s15Met(r, ordo, pool, rate),
		Line: fmt.Sprintf("bench S15: rate=%.0f jobs/s ordo_sent=%.0f jobs/s reader_pool_sent=%.0f jobs/s ordo_p50=%.2f ms ordo_p99=%.2f ms ordo_max=%.2f ms reader_pool_p50=%.2f ms reader_pool_p99=%.2f ms reader_pool_max=%.2f ms broker=%s ratio=%.2f",
			rate, ordo.sentRate, pool.sentRate, msf(ordo.p50), msf(ordo.p99), msf(ordo.max), msf(pool.p50), msf(pool.p99), msf(pool.max), b.target.Name, r),
	})
	return nil
}

// s15Met says whether the targets were met, and not when either side's
// jobs were enqueued at less than 0.9 of the load asked for: the latencies
// then do not answer the question.
func s15Met(r float64, ordo, pool latencySummary, rate float64) string {
	if min(ordo.sentRate, pool.sentRate) < 0.9*rate {
		return fmt.Sprintf("**no**: the load was not reached (jobs enqueued at %.0f and %.0f jobs/s of %.0f)", ordo.sentRate, pool.sentRate, rate)
	}
	return met(r <= 1.5 && ordo.p50 <= 5*time.Millisecond)
}

// latencySummary is one side of S15.
type latencySummary struct {
	p50, p99, max time.Duration
	sentRate      float64 // the rate the jobs were enqueued at
}

// s15Run starts a consumer with start on a fresh topic, waits until it ran
// a warm-up job, enqueues jobs at rate for S15's duration, one Enqueue each,
// waits until all have run and stops the consumer.
func (b *bench) s15Run(ctx context.Context, what string, rate float64, job func(i int) LatencyArgs,
	start func(ctx context.Context, topic string, l *latencyLog) (stop func() error, err error)) (latencySummary, error) {
	sz := b.sizes
	topic, err := b.newTopic(ctx, "s15", sz.s15Partitions)
	if err != nil {
		return latencySummary{}, err
	}
	total := int(rate * sz.s15Duration.Seconds())
	m := newMeter(total)
	l := newLatencyLog(m)
	clients := make([]*jobs.Client, s15Clients)
	for i := range clients {
		c, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.target.Brokers, Topic: topic, Logger: b.logger})
		if err != nil {
			return latencySummary{}, err
		}
		defer c.Close()
		clients[i] = c
	}
	stop, err := start(ctx, topic, l)
	if err != nil {
		return latencySummary{}, err
	}
	sum, err := func() (latencySummary, error) {
		if _, err := clients[0].Enqueue(ctx, LatencyArgs{Key: "warm-up"}); err != nil {
			return latencySummary{}, err
		}
		select {
		case <-l.warm:
		case <-time.After(2 * time.Minute):
			return latencySummary{}, fmt.Errorf("%s: the warm-up job did not run in 2 minutes", what)
		case <-ctx.Done():
			return latencySummary{}, ctx.Err()
		}
		b.progressf("bench %s: consumer runs; enqueueing %d jobs at %.0f jobs/s", what, total, rate)
		sent, err := b.pace(ctx, clients, rate, total, job)
		if err != nil {
			return latencySummary{}, err
		}
		b.progressf("bench %s: %d jobs enqueued at %.0f jobs/s (asked %.0f); Enqueue calls took p50 %.2f ms, p99 %.2f ms, at most %d in flight",
			what, total, sent.rate, rate, msf(sent.callP50), msf(sent.callP99), sent.peak)
		if err := b.wait(ctx, what, m, 2*time.Minute, func() []jobs.PartitionStats { return nil }); err != nil {
			return latencySummary{}, err
		}
		lat := l.sorted()
		s := latencySummary{p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[len(lat)-1], sentRate: sent.rate}
		b.progressf("bench %s: enqueue to start p50 %.2f ms, p99 %.2f ms, max %.2f ms", what, msf(s.p50), msf(s.p99), msf(s.max))
		return s, nil
	}()
	return sum, errors.Join(err, stop())
}

// S15 enqueues from s15Clients clients, as from that many instances of a
// service, taking the calls in turn.
const s15Clients = 4

// s15MaxCalls bounds the calls in flight at once, should the broker stop
// answering: more than two seconds of calls at the load (25,000 jobs/s at
// a 20 ms round trip is 500 in flight), so that it sets the pace only when
// the run has no meaning left. The progress prints the most reached.
const s15MaxCalls = 1 << 16

// pace enqueues total jobs with one Enqueue each at rate jobs/s, and returns
// the rate they were enqueued at, from the first call to the last return
// (lower than rate when the clients cannot keep up). Every millisecond the
// calls due by then start, each on a goroutine of its own, as a service's
// requests do: a call never waits for the ones before it. A fixed pool of
// callers would cap the rate at callers per call time, and a call takes
// far longer than a round trip under load (a client has one produce request
// in flight and sends the calls that came meanwhile in the next): on Kafka,
// with nothing consuming, 256 callers reached 19,244 jobs/s of 25,000, a
// goroutine per call 24,931.
func (b *bench) pace(ctx context.Context, clients []*jobs.Client, rate float64, total int, job func(i int) LatencyArgs) (paced, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	calls := make(chan struct{}, s15MaxCalls)
	took := make([]time.Duration, total)
	peak := 0
	began := time.Now()
	tick := time.NewTicker(time.Millisecond)
	next := 0
feed:
	for next < total {
		select {
		case <-tick.C:
		case <-ctx.Done():
			break feed
		}
		peak = max(peak, len(calls))
		for want := min(total, int(time.Since(began).Seconds()*rate)); next < want; next++ {
			select {
			case calls <- struct{}{}:
			case <-ctx.Done():
				break feed
			}
			client := clients[next%len(clients)]
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-calls }()
				args := job(i)
				sent := time.Now()
				args.Sent = sent.UnixNano()
				if _, err := client.Enqueue(ctx, args); err != nil {
					if failed.CompareAndSwap(nil, &err) {
						cancel()
					}
				}
				took[i] = time.Since(sent)
			}(next)
		}
	}
	tick.Stop()
	wg.Wait()
	reached := float64(total) / time.Since(began).Seconds()
	if err := failed.Load(); err != nil {
		return paced{}, fmt.Errorf("enqueue: %w", *err)
	}
	if err := ctx.Err(); err != nil {
		return paced{}, err
	}
	slices.Sort(took)
	return paced{rate: reached, callP50: percentile(took, 50), callP99: percentile(took, 99), peak: peak}, nil
}

// paced is what pace reached: the rate the jobs were enqueued at, and how
// long the Enqueue calls took, which enqueue to start includes.
type paced struct {
	rate             float64
	callP50, callP99 time.Duration
	peak             int // the most calls in flight at once
}

// latencyLog keeps each S15 job's time from enqueue to start.
type latencyLog struct {
	m        *meter
	warm     chan struct{}
	warmOnce sync.Once
	mu       sync.Mutex
	lat      []time.Duration
}

func newLatencyLog(m *meter) *latencyLog {
	return &latencyLog{m: m, warm: make(chan struct{}), lat: make([]time.Duration, 0, m.target)}
}

// run is an S15 job.
func (l *latencyLog) run(args LatencyArgs) {
	started := time.Now()
	if args.Sent == 0 && args.Key == "warm-up" {
		l.warmOnce.Do(func() { close(l.warm) })
		return
	}
	l.m.start()
	if args.Sent != 0 {
		l.mu.Lock()
		l.lat = append(l.lat, started.Sub(time.Unix(0, args.Sent)))
		l.mu.Unlock()
	}
	time.Sleep(time.Duration(args.Micros) * time.Microsecond)
	l.m.done()
}

func (l *latencyLog) sorted() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.lat)
	slices.Sort(s)
	return s
}

func latencyWorker(l *latencyLog) *jobs.Workers {
	w := jobs.NewWorkers()
	if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[LatencyArgs]) error {
		l.run(job.Args)
		return nil
	})); err != nil {
		panic(err) // only a nil worker or a duplicate kind fails
	}
	return w
}

func latencyHandler(l *latencyLog) func(kafkago.Message) error {
	return func(msg kafkago.Message) error {
		var args LatencyArgs
		if err := decodeJob(msg.Value, &args); err != nil {
			return err
		}
		l.run(args)
		return nil
	}
}
