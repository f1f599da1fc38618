package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// sizes are the knobs that -quick turns down; the lines and files stay the
// same.
type sizes struct {
	s1Jobs, s1Partitions, s1Keys, s1Trials int
	s1StatusPairs                          int // S1 runs with and without the status reports, back to back

	s2Jobs, s2Partitions, s2Keys int
	s2Concurrency                []int
	s2Work                       time.Duration

	s3Jobs, s3Concurrency int
	s3Keys                []int
	s3BlockingKeys        []int // key counts of the variant whose handler blocks its thread
	s3MaxWork             time.Duration

	s4Backlogs              []int // ascending; each tops up the previous one's topic
	s4OneRecordBacklogs     []int // the same, written with one Enqueue per job
	s4Keys, s4Partitions    int
	s4Concurrency, s4MaxBuf int
	s4Work, s4Window        time.Duration

	s5Partitions, s5Concurrency, s5Trials int
	s5Work, s5Heartbeat                   time.Duration

	s6Marks                     []int // done counts at which memory is read; the last is the number of keys
	s6Partitions, s6Concurrency int
	s6Timeout                   time.Duration

	s7Jobs, s7Keys, s7Partitions, s7Concurrency int
	s7BadEvery, s7Trials                        int // one bad record per s7BadEvery good jobs
	s7Work                                      time.Duration

	s10Sequential, s10Concurrent int // calls timed one at a time; jobs enqueued by s10Goroutines at once
	s10Goroutines, s10Partitions int

	s9Jobs, s9Keys, s9Partitions, s9Pending int
	s9Window, s9Lead                        time.Duration // the jobs are due within s9Window, from s9Lead after the enqueue began

	s8Partitions, s8Keys, s8Rate, s8Concurrency int
	s8Work, s8Warmup, s8Steady                  time.Duration

	s11Jobs, s11Keys, s11Partitions, s11MaxBuffered int
	s11Concurrency                                  []int // the first is the scenario's; its row holds the target
	s11Call, s11PerJob                              time.Duration

	s15Keys, s15Partitions, s15Concurrency, s15CapacityJobs int
	s15Work, s15Duration                                    time.Duration
}

// defaultSizes are issue 5's scenarios as stated.
func defaultSizes() sizes {
	return sizes{
		s1Jobs: 200_000, s1Partitions: 12, s1Keys: 10_000, s1Trials: 3, s1StatusPairs: 9,

		s2Jobs: 25_000, s2Partitions: 5, s2Keys: 1_000,
		s2Concurrency: []int{1, 5, 10, 14, 100}, s2Work: time.Millisecond,

		s3Jobs: 10_000, s3Concurrency: 100, s3Keys: []int{1, 2, 5, 10, 20, 1_000, 10_000},
		s3BlockingKeys: []int{1_000, 10_000}, s3MaxWork: 5 * time.Millisecond,

		s4Backlogs: []int{250_000, 1_000_000}, s4OneRecordBacklogs: []int{250_000, 1_000_000}, s4Keys: 100_000, s4Partitions: 12,
		s4Concurrency: 100, s4MaxBuf: 1000, s4Work: 10 * time.Millisecond, s4Window: 10 * time.Second,

		s5Partitions: 6, s5Concurrency: 30, s5Trials: 3,
		s5Work: 100 * time.Millisecond, s5Heartbeat: 100 * time.Millisecond,

		s6Marks: []int{200_000, 2_000_000}, s6Partitions: 12, s6Concurrency: 100, s6Timeout: 30 * time.Minute,

		s7Jobs: 45_000, s7Keys: 500, s7Partitions: 5, s7Concurrency: 100,
		s7BadEvery: 10, s7Trials: 2, s7Work: time.Millisecond,

		s9Jobs: 100_000, s9Keys: 1_000, s9Partitions: 12, s9Pending: 1_000_000,
		s9Window: 10 * time.Second, s9Lead: 30 * time.Second,

		s10Sequential: 2_000, s10Concurrent: 50_000, s10Goroutines: 64, s10Partitions: 3,
		s8Partitions: 24, s8Keys: 500, s8Rate: 4_000, s8Concurrency: 20,
		s8Work: time.Millisecond, s8Warmup: 2 * time.Second, s8Steady: 3 * time.Second,

		s11Jobs: 200_000, s11Keys: 1_000, s11Partitions: 12, s11Concurrency: []int{10, 100}, s11MaxBuffered: 10_000,
		s11Call: time.Millisecond, s11PerJob: 10 * time.Microsecond,

		s15Keys: 1_000, s15Partitions: 5, s15Concurrency: 100, s15CapacityJobs: 25_000,
		s15Work: time.Millisecond, s15Duration: 30 * time.Second,
	}
}

// quickSizes keep every scenario and line but make each small, so the whole
// run takes about a minute, most of it S6's 200,000 keys (the harness test
// turns them down further: under the race detector they take two minutes).
func quickSizes() sizes {
	s := defaultSizes()
	s.s1Jobs, s.s1Keys, s.s1Trials, s.s1StatusPairs = 10_000, 1_000, 1, 1
	s.s2Jobs, s.s2Keys = 1_000, 100
	s.s3Jobs = 400
	s.s4Backlogs, s.s4Keys, s.s4Window = []int{20_000, 80_000}, 10_000, 1500*time.Millisecond
	s.s4OneRecordBacklogs = s.s4Backlogs
	s.s5Trials = 1
	s.s6Marks, s.s6Timeout = []int{20_000, 200_000}, 5*time.Minute
	s.s7Jobs = 5_000
	s.s9Jobs, s.s9Pending, s.s9Window, s.s9Lead = 5_000, 50_000, 2*time.Second, 5*time.Second
	s.s10Sequential, s.s10Concurrent = 200, 5_000
	s.s8Rate, s.s8Warmup, s.s8Steady = 1_000, 500*time.Millisecond, time.Second
	s.s11Jobs = 10_000
	s.s15CapacityJobs, s.s15Duration = 2_000, 3*time.Second
	return s
}

type bench struct {
	target   target
	sizes    sizes
	quick    bool
	backlog  backlogShape
	admin    *kafka.Admin
	summary  io.Writer
	progress io.Writer
	logger   *slog.Logger

	mu               sync.Mutex
	topics           []string
	results          []result
	s2Points         []point
	s3Points         []point
	s3BlockingPoints []point
}

// result is one measurement: its table row and its summary line. A row
// with no line states a further target of the measurement the row before
// it printed.
type result struct {
	Scenario, Measurement, Ordo, Baseline, Ratio, Target, Met string
	Line                                                      string
}

// point is one point of a chart: x, ordo's figure, the bound, and what Go
// alone achieves (S2: the goroutine pool; S3: the bound times the timer
// floor; S3 blocking: a goroutine per key).
type point struct{ X, Ordo, Bound, GoOnly float64 }

func (b *bench) progressf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.progress, format+"\n", args...)
}

// record prints a summary line and keeps it for the table.
func (b *bench) record(r result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.Line != "" {
		fmt.Fprintln(b.summary, r.Line)
	}
	b.results = append(b.results, r)
}

// newTopic creates a uniquely named topic, deleted when the run ends.
func (b *bench) newTopic(ctx context.Context, scenario string, partitions int) (string, error) {
	name := uniqueName("bench-" + scenario)
	return name, b.createTopic(ctx, name, partitions)
}

// createTopic creates the named topic, deleted when the run ends.
func (b *bench) createTopic(ctx context.Context, name string, partitions int) error {
	if err := b.admin.CreateTopics(ctx, kafka.Topic{Name: name, Partitions: partitions}); err != nil {
		return err
	}
	b.mu.Lock()
	b.topics = append(b.topics, name)
	b.mu.Unlock()
	return nil
}

// dropTopics deletes the run's topics so far: the big backlogs should not
// outlive their scenario on a real broker.
func (b *bench) cleanup() {
	b.mu.Lock()
	topics := b.topics
	b.topics = nil
	b.mu.Unlock()
	if len(topics) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.admin.DeleteTopics(ctx, topics...); err != nil {
		b.progressf("bench: clean-up: %v", err)
	}
}

func uniqueName(prefix string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return prefix + "-" + strconv.FormatInt(time.Now().Unix(), 36) + "-" + hex.EncodeToString(r[:])
}

// NoopArgs is S1's job: it does nothing, so what is measured is the path
// from the broker to the worker and back to a commit.
type NoopArgs struct {
	Key string `msgpack:"key"`
	N   int    `msgpack:"n"`
}

func (NoopArgs) Kind() string                      { return "bench_noop" }
func (a NoopArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// SleepArgs is the job of S2–S5: it sleeps for Micros microseconds.
type SleepArgs struct {
	Key    string `msgpack:"key"`
	Micros int    `msgpack:"us"`
}

func (SleepArgs) Kind() string                      { return "bench_sleep" }
func (a SleepArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// backlogShape is how a scenario's backlog is written: in chunks of
// EnqueueMany (record batches of many jobs), or with one Enqueue per job
// (a record batch per job, as a service enqueueing one job per request
// writes them).
type backlogShape string

const (
	chunked   backlogShape = "chunked"
	oneRecord backlogShape = "single"
)

// enqueue writes n jobs in the run's backlog shape (-backlog).
func (b *bench) enqueue(ctx context.Context, scenario, topic string, n int, job func(i int) jobs.JobArgs) error {
	return b.enqueueShaped(ctx, b.backlog, scenario, topic, n, job)
}

// enqueueShaped writes n jobs in the given shape.
func (b *bench) enqueueShaped(ctx context.Context, shape backlogShape, scenario, topic string, n int, job func(i int) jobs.JobArgs) error {
	return b.enqueueParamsShaped(ctx, shape, scenario, topic, n, func(i int) jobs.EnqueueParams { return jobs.EnqueueParams{Args: job(i)} })
}

// enqueueParams is enqueue for jobs with options (a run-at, a key).
func (b *bench) enqueueParams(ctx context.Context, scenario, topic string, n int, job func(i int) jobs.EnqueueParams) error {
	return b.enqueueParamsShaped(ctx, b.backlog, scenario, topic, n, job)
}

func (b *bench) enqueueParamsShaped(ctx context.Context, shape backlogShape, scenario, topic string, n int, job func(i int) jobs.EnqueueParams) error {
	if shape == oneRecord {
		return b.enqueueOneByOne(ctx, scenario, topic, n, job)
	}
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.target.Brokers, Topic: topic, Logger: b.logger})
	if err != nil {
		return err
	}
	defer client.Close()
	return b.produce(ctx, scenario, topic, n, 5_000, 4, func(ctx context.Context, _, from, to int) error {
		params := make([]jobs.EnqueueParams, 0, to-from)
		for i := from; i < to; i++ {
			params = append(params, job(i))
		}
		_, err := client.EnqueueMany(ctx, params)
		return err
	})
}

// oneByOneSenders is how many goroutines write a one-record backlog.
const oneByOneSenders = 16

// enqueueOneByOne writes n jobs with one jobs.Client.Enqueue call each. The
// senders have a client each: the calls one client gets while a write is in
// flight go out together in the next produce request (kafka.Producer queues
// them), so concurrent calls on one client would share record batches. A
// client whose calls come one at a time writes each job as a record batch of
// its own, which is what a service enqueueing a job per request at a modest
// rate sends.
func (b *bench) enqueueOneByOne(ctx context.Context, scenario, topic string, n int, job func(i int) jobs.EnqueueParams) error {
	clients := make([]*jobs.Client, oneByOneSenders)
	for i := range clients {
		c, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.target.Brokers, Topic: topic, Logger: b.logger})
		if err != nil {
			return err
		}
		defer c.Close()
		clients[i] = c
	}
	return b.produce(ctx, scenario, topic, n, 1, len(clients), func(ctx context.Context, sender, from, _ int) error {
		p := job(from)
		_, err := clients[sender].Enqueue(ctx, p.Args, p.Opts...)
		return err
	})
}

// produce has senders goroutines call send for the chunks [from, to) of n
// jobs, each naming itself (0 to senders-1), printing progress every two
// seconds.
func (b *bench) produce(ctx context.Context, scenario, topic string, n, chunk, senders int, send func(ctx context.Context, sender, from, to int) error) error {
	began := time.Now()
	var sent atomic.Int64
	next := make(chan int)
	errs := make(chan error, senders)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for sender := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for from := range next {
				to := min(from+chunk, n)
				if err := send(ctx, sender, from, to); err != nil {
					errs <- err
					cancel()
					return
				}
				sent.Add(int64(to - from))
			}
		}()
	}
	fed := make(chan struct{})
	defer close(fed)
	go func() {
		report := time.NewTicker(2 * time.Second)
		defer report.Stop()
		for {
			select {
			case <-report.C:
				b.progressf("bench %s: enqueued %d/%d", scenario, sent.Load(), n)
			case <-fed:
				return
			}
		}
	}()
feed:
	for from := 0; from < n; from += chunk {
		select {
		case next <- from:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("enqueue to %s: %w", topic, err)
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Since(began)
	b.progressf("bench %s: enqueued %d jobs to %s in %v (%.0f jobs/s)", scenario, n, topic,
		d.Round(10*time.Millisecond), float64(n)/d.Seconds())
	return nil
}

// meter counts jobs and times them from the first one's start to the
// target-th one's end, so group joins and the first fetch are left out, the
// same way for ordo and for the baselines.
type meter struct {
	target      int64
	n           atomic.Int64
	started     atomic.Bool
	first, last atomic.Int64 // unix nanoseconds
	full        chan struct{}
}

func newMeter(target int) *meter { return &meter{target: int64(target), full: make(chan struct{})} }

// start marks a job's start; only the first call reads the clock.
func (m *meter) start() {
	if !m.started.Load() && m.started.CompareAndSwap(false, true) {
		m.first.Store(time.Now().UnixNano())
	}
}

// done counts a finished job.
func (m *meter) done() {
	if m.n.Add(1) == m.target {
		m.last.Store(time.Now().UnixNano())
		close(m.full)
	}
}

func (m *meter) elapsed() time.Duration { return time.Duration(m.last.Load() - m.first.Load()) }

func (m *meter) rate() float64 { return float64(m.target) / m.elapsed().Seconds() }

// wait waits until the meter is full, printing progress every second. When
// nothing finishes for stallAfter it prints the server's partitions and
// writes a goroutine dump, once, so a stall can be diagnosed afterwards.
func (b *bench) wait(ctx context.Context, what string, m *meter, limit time.Duration, stats func() []jobs.PartitionStats) error {
	const stallAfter = 15 * time.Second
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(limit)
	began := time.Now()
	last, lastChange, dumped := int64(-1), time.Now(), false
	for {
		select {
		case <-m.full:
			return nil
		case <-tick.C:
			n := m.n.Load()
			b.progressf("bench %s: %d/%d done after %v", what, n, m.target, time.Since(began).Round(time.Second))
			if n != last {
				last, lastChange = n, time.Now()
			} else if !dumped && time.Since(lastChange) > stallAfter {
				dumped = true
				b.stalled(what, stats())
			}
		case <-deadline:
			return fmt.Errorf("%s: only %d of %d jobs done after %v", what, m.n.Load(), m.target, limit)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *bench) stalled(what string, st []jobs.PartitionStats) {
	for _, p := range st {
		b.progressf("bench %s: STALLED: %s/%d generation %d buffered %d in flight %d keys %d committed %d high watermark %d revoked %v",
			what, p.Topic, p.Partition, p.Generation, p.Buffered, p.InFlight, p.Keys, p.Committed, p.HighWatermark, p.Revoked)
	}
	f, err := os.CreateTemp("", "ordo-bench-stall-*.txt")
	if err != nil {
		b.progressf("bench %s: STALLED: %v", what, err)
		return
	}
	defer f.Close()
	_ = pprof.Lookup("goroutine").WriteTo(f, 2)
	b.progressf("bench %s: STALLED: goroutines written to %s", what, f.Name())
}

// serverConfig is the jobs.Config every scenario starts from.
func (b *bench) serverConfig(topic string, concurrency int, workers *jobs.Workers) jobs.Config {
	return jobs.Config{
		Brokers:      b.target.Brokers,
		Group:        uniqueName("bench-group"),
		Topics:       []string{topic},
		Workers:      workers,
		CreateTopics: &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1}, // the dead-letter topic
		Schedules:    jobs.SchedulesOff,                                    // no delayed jobs here: no dispatcher beside the server measured
		Concurrency:  concurrency,
		Logger:       b.logger,
	}
}

// runServer starts a server, waits until m is full, and stops it.
func (b *bench) runServer(ctx context.Context, what string, cfg jobs.Config, m *meter, limit time.Duration) error {
	return b.serve(ctx, what, cfg, m, limit, nil)
}

// serve is runServer that, once m is full and before it stops the server,
// waits for settled too (when not nil): work that m does not count.
func (b *bench) serve(ctx context.Context, what string, cfg jobs.Config, m *meter, limit time.Duration, settled func(context.Context) error) error {
	// Goroutines started under the label inherit it (the server's handler
	// pool starts in NewServer), so a CPU profile can be cut to one
	// measurement: go tool pprof -tagfocus 'run=S1 ordo'.
	var s *jobs.Server
	var err error
	pprof.Do(ctx, pprof.Labels("run", what), func(ctx context.Context) {
		if s, err = jobs.NewServer(cfg); err == nil {
			err = s.Start(ctx)
		}
	})
	if err != nil {
		return err
	}
	werr := b.wait(ctx, what, m, limit, s.Stats)
	if werr == nil && settled != nil {
		werr = settled(ctx)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(stopCtx); err != nil && werr == nil {
		return fmt.Errorf("%s: stop: %w", what, err)
	}
	return werr
}

// sleepWorker runs SleepArgs jobs with sleep (time.Sleep, or blockingSleep
// for S3's blocking variant), counting them on m.
func sleepWorker(m *meter, sleep func(time.Duration)) *jobs.Workers {
	w := jobs.NewWorkers()
	if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SleepArgs]) error {
		m.start()
		sleep(time.Duration(job.Args.Micros) * time.Microsecond)
		m.done()
		return nil
	})); err != nil {
		panic(err) // only a nil worker or a duplicate kind fails
	}
	return w
}

func ratio(x, y float64) string { return strconv.FormatFloat(x/y, 'f', 2, 64) }

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// newLogger logs ordo's warnings and errors with the progress lines: a
// fetch or commit that keeps failing must show when a measurement stalls.
func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// timerFloor is how much longer than asked the given sleeps take back to
// back on one goroutine, without Kafka or ordo: the best a job that sleeps
// can do on this machine (Go's timers wake late by up to a millisecond when
// the process is otherwise idle).
func timerFloor(sleeps []time.Duration) float64 {
	var want time.Duration
	began := time.Now()
	for _, d := range sleeps {
		time.Sleep(d)
		want += d
	}
	return float64(time.Since(began)) / float64(want)
}

// sleepPool is the same jobs run by n goroutines taking them from a counter,
// without Kafka or ordo: the rate Go's scheduler and timers allow here.
func sleepPool(n, jobs int, d time.Duration) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(jobs) {
				time.Sleep(d)
			}
		}()
	}
	wg.Wait()
	return float64(jobs) / time.Since(began).Seconds()
}
