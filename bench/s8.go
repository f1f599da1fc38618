package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// s8 is a rolling restart: three members share a topic while jobs stream in
// at a steady rate; each member in turn is stopped (as on SIGTERM: Stop) and
// started again. For eager, cooperative and cooperative+static rebalancing it
// reports the partitions revoked on the members that were not restarted,
// the jobs that ran twice, and how fast the partitions the restarted member
// did not hold ("untouched") finished jobs during each restart, against
// their own steady state. All members are jobs.Servers in this process.
func (b *bench) s8(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S8: rolling restart, 3 members, %d partitions, %d keys, %v jobs at %d jobs/s, c=%d per member",
		sz.s8Partitions, sz.s8Keys, sz.s8Work, sz.s8Rate, sz.s8Concurrency)
	for _, mode := range []struct {
		name      string
		rebalance jobs.RebalanceProtocol
		static    bool
	}{
		{"eager", jobs.RebalanceEager, false},
		{"cooperative", jobs.RebalanceCooperative, false},
		{"cooperative+static", jobs.RebalanceCooperative, true},
	} {
		r, err := b.s8Run(ctx, mode.name, mode.rebalance, mode.static)
		if err != nil {
			return fmt.Errorf("%s: %w", mode.name, err)
		}
		b.progressf("bench S8 %s: revoked on the others %d, duplicates %d (in flight at the stops %d), untouched throughput per restart %s, longest gap of an untouched partition %v (steady state %v; longest restart %v)",
			mode.name, r.revokedOthers, r.duplicates, r.inflight, r.ratios, ms(r.gap), ms(r.steadyGap), ms(r.window))
		target, ok := "—", "—"
		if mode.static {
			target = "0 revoked on the others; duplicates ≤ in flight; untouched ≥ 0.9"
			ok = met(r.revokedOthers == 0 && r.duplicates <= r.inflight && r.worst >= 0.9)
		}
		b.record(result{
			Scenario: "S8",
			Measurement: fmt.Sprintf("rolling restart, %s: 3 members, each stopped and started again in turn (%d partitions, %d keys, %v jobs at %d jobs/s, c=%d each)",
				mode.name, sz.s8Partitions, sz.s8Keys, sz.s8Work, sz.s8Rate, sz.s8Concurrency),
			Ordo: fmt.Sprintf("%d partitions revoked on the others; %d jobs ran twice (%d in flight at the stops); untouched throughput %s of steady state while the group settled (longest restart %v); longest gap of an untouched partition %v",
				r.revokedOthers, r.duplicates, r.inflight, r.ratios, ms(r.window), ms(r.gap)),
			Baseline: fmt.Sprintf("steady state of the same partitions, measured before the restarts (longest gap %v)", ms(r.steadyGap)),
			Ratio:    fmt.Sprintf("%.2f (worst restart)", r.worst),
			Target:   target,
			Met:      ok,
			Line: fmt.Sprintf("bench S8 %s: revoked_others=%d duplicates=%d inflight=%d untouched=%.2f gap=%d ms steady_gap=%d ms broker=%s ratio=%.2f",
				mode.name, r.revokedOthers, r.duplicates, r.inflight, r.worst, r.gap.Milliseconds(), r.steadyGap.Milliseconds(), b.target.Name, r.worst),
		})
	}
	return nil
}

type s8Result struct {
	revokedOthers, duplicates, inflight int
	ratios                              string
	worst                               float64
	// gap is the longest an untouched partition finished nothing during
	// a restart, window the longest restart; steadyGap the longest gap
	// of any partition in steady state.
	gap, window, steadyGap time.Duration
}

// s8Log counts what the members did: runs per job and when each partition
// finished one.
type s8Log struct {
	mu       sync.Mutex
	runs     map[string]int
	finished [][]time.Time // by partition
}

func (l *s8Log) done(id string, partition int) {
	now := time.Now()
	l.mu.Lock()
	l.runs[id]++
	l.finished[partition] = append(l.finished[partition], now)
	l.mu.Unlock()
}

// rate is the jobs/s the partitions finished between from and to.
func (l *s8Log) rate(partitions []int, from, to time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range partitions {
		for _, t := range l.finished[p] {
			if !t.Before(from) && t.Before(to) {
				n++
			}
		}
	}
	return float64(n) / to.Sub(from).Seconds()
}

// gap is the longest any of the partitions went without finishing a job
// between from and to: how long a rebalance stopped them.
func (l *s8Log) gap(partitions []int, from, to time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var longest time.Duration
	for _, p := range partitions {
		last := from
		for _, t := range l.finished[p] {
			if t.Before(from) || !t.Before(to) {
				continue
			}
			longest = max(longest, t.Sub(last))
			last = t
		}
		longest = max(longest, to.Sub(last))
	}
	return longest
}

// releases counts a member's "partition released" logs.
type releases struct{ n *atomic.Int64 }

func (r releases) Enabled(context.Context, slog.Level) bool { return true }
func (r releases) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "ordo: partition released" {
		r.n.Add(1)
	}
	return nil
}
func (r releases) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r releases) WithGroup(string) slog.Handler      { return r }

func (b *bench) s8Run(ctx context.Context, name string, rebalance jobs.RebalanceProtocol, static bool) (s8Result, error) {
	sz := b.sizes
	var res s8Result
	topic, err := b.newTopic(ctx, "s8", sz.s8Partitions)
	if err != nil {
		return res, err
	}
	log := &s8Log{runs: map[string]int{}, finished: make([][]time.Time, sz.s8Partitions)}
	work := int(sz.s8Work / time.Microsecond)
	group := uniqueName("bench-s8")
	released := make([]*atomic.Int64, 3)
	newServer := func(i int) (*jobs.Server, error) {
		w := jobs.NewWorkers()
		if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SleepArgs]) error {
			time.Sleep(time.Duration(job.Args.Micros) * time.Microsecond)
			log.done(job.ID, job.Partition)
			return nil
		})); err != nil {
			return nil, err
		}
		released[i] = &atomic.Int64{}
		cfg := b.serverConfig(topic, sz.s8Concurrency, w)
		cfg.Group, cfg.Rebalance = group, rebalance
		cfg.HeartbeatInterval, cfg.SessionTimeout, cfg.RebalanceTimeout = 200*time.Millisecond, 10*time.Second, 10*time.Second
		cfg.Logger = slog.New(releases{n: released[i]})
		if static {
			cfg.InstanceID = "s8-member-" + strconv.Itoa(i)
		}
		s, err := jobs.NewServer(cfg)
		if err == nil {
			err = s.Start(ctx)
		}
		return s, err
	}
	members := make([]*jobs.Server, 3)
	defer func() {
		for _, s := range members {
			if s != nil {
				stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_ = s.StopAndLeave(stopCtx)
				cancel()
			}
		}
	}()
	held := func() (total int, each []int) {
		for _, s := range members {
			n := len(s.Stats())
			total += n
			each = append(each, n)
		}
		return total, each
	}
	settled := func() bool {
		total, each := held()
		for _, n := range each {
			if n == 0 {
				return false
			}
		}
		return total == sz.s8Partitions
	}
	for i := range members {
		if members[i], err = newServer(i); err != nil {
			return res, err
		}
		if err := poll(ctx, time.Minute, 10*time.Millisecond, func() bool { return len(members[i].Stats()) > 0 }); err != nil {
			return res, fmt.Errorf("member %d got no partition: %w", i, err)
		}
	}
	if err := poll(ctx, time.Minute, 10*time.Millisecond, settled); err != nil {
		return res, fmt.Errorf("the members never shared the partitions: %w", err)
	}

	// Jobs stream in at a steady rate until the restarts are over.
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.target.Brokers, Topic: topic, Logger: b.logger})
	if err != nil {
		return res, err
	}
	defer client.Close()
	var produced atomic.Int64
	produceCtx, stopProducing := context.WithCancel(ctx)
	producerDone := make(chan error, 1)
	go func() {
		const tick = 10 * time.Millisecond
		per := sz.s8Rate * int(tick) / int(time.Second)
		t := time.NewTicker(tick)
		defer t.Stop()
		for i := 0; ; {
			select {
			case <-produceCtx.Done():
				producerDone <- nil
				return
			case <-t.C:
			}
			params := make([]jobs.EnqueueParams, per)
			for j := range params {
				params[j] = jobs.EnqueueParams{Args: SleepArgs{Key: "key-" + strconv.Itoa(i%sz.s8Keys), Micros: work}}
				i++
			}
			if _, err := client.EnqueueMany(ctx, params); err != nil {
				producerDone <- err
				return
			}
			produced.Add(int64(per))
		}
	}()
	defer stopProducing()

	all := make([]int, sz.s8Partitions)
	for p := range all {
		all[p] = p
	}
	time.Sleep(sz.s8Warmup) // the stream reaches every partition
	steadyFrom := time.Now()
	time.Sleep(sz.s8Steady)
	steadyTo := time.Now()
	res.steadyGap = log.gap(all, steadyFrom, steadyTo)

	var ratios []string
	res.worst = 1e9
	for i := range members {
		owned := map[int]bool{}
		for _, p := range members[i].Stats() {
			owned[p.Partition] = true
			res.inflight += p.InFlight
		}
		var untouched []int
		for _, p := range all {
			if !owned[p] {
				untouched = append(untouched, p)
			}
		}
		var before int64
		for j, r := range released {
			if j != i {
				before += r.Load()
			}
		}
		from := time.Now()
		stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := members[i].Stop(stopCtx) // SIGTERM: finish what runs, commit; a static member stays in the group
		cancel()
		members[i] = nil
		if err != nil {
			return res, fmt.Errorf("stopping member %d: %w", i, err)
		}
		if members[i], err = newServer(i); err != nil {
			return res, err
		}
		if err := poll(ctx, time.Minute, 10*time.Millisecond, settled); err != nil {
			return res, fmt.Errorf("the group did not settle after member %d restarted: %w", i, err)
		}
		to := time.Now()
		var after int64
		for j, r := range released {
			if j != i {
				after += r.Load()
			}
		}
		res.revokedOthers += int(after - before)
		// The window ends when the group has settled: the catch-up after
		// a pause is not counted, the pause is.
		steady := log.rate(untouched, steadyFrom, steadyTo)
		r := log.rate(untouched, from, to) / steady
		res.worst = min(res.worst, r)
		res.gap = max(res.gap, log.gap(untouched, from, to))
		res.window = max(res.window, to.Sub(from))
		ratios = append(ratios, fmt.Sprintf("%.2f", r))
		time.Sleep(sz.s8Warmup) // settle again before the next restart
	}
	res.ratios = "[" + strings.Join(ratios, ", ") + "]"

	stopProducing()
	if err := <-producerDone; err != nil && !errors.Is(err, context.Canceled) {
		return res, fmt.Errorf("producer: %w", err)
	}
	want := int(produced.Load())
	err = poll(ctx, 2*time.Minute, 20*time.Millisecond, func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return len(log.runs) >= want
	})
	if err != nil {
		return res, fmt.Errorf("%d of %d jobs ran: %w", len(log.runs), want, err)
	}
	log.mu.Lock()
	for _, n := range log.runs {
		res.duplicates += n - 1
	}
	log.mu.Unlock()
	b.progressf("bench S8 %s: %d jobs streamed, all ran", name, want)
	return res, nil
}
