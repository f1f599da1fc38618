package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/jobs"
)

// s1 is no-op throughput: the same pre-produced jobs read by (a) raw
// kafka-go fetches, (b) the same fetches decoding each job, the floor for a
// job runner, (c) a naive sequential kafka-go Reader that decodes each job,
// (d) ordo end to end.
func (b *bench) s1(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S1: no-op throughput, %d jobs, %d partitions, %d keys", sz.s1Jobs, sz.s1Partitions, sz.s1Keys)
	topic, err := b.newTopic(ctx, "s1", sz.s1Partitions)
	if err != nil {
		return err
	}
	err = b.enqueue(ctx, "S1", topic, sz.s1Jobs, func(i int) jobs.JobArgs {
		return NoopArgs{Key: "key-" + strconv.Itoa(i%sz.s1Keys), N: i}
	})
	if err != nil {
		return err
	}
	end, err := b.admin.EndOffsets(ctx, topic)
	if err != nil {
		return err
	}
	argsAllocs, err := unmarshalAllocs(NoopArgs{Key: "key-" + strconv.Itoa(sz.s1Keys-1), N: sz.s1Jobs - 1})
	if err != nil {
		return err
	}
	b.progressf("bench S1: msgpack.Unmarshal of one NoopArgs: %.1f allocs", argsAllocs)

	// The machine is shared and the runs are short: a baseline moves by a
	// quarter from one run to the next, so the best of each side could pair
	// a quiet baseline with a noisy ordo or the other way round. Each trial
	// runs ordo and fetch+decode back to back, which shared noise moves
	// alike, the first of the two alternating so that neither always runs
	// in the other's wake; the figures are the trial with the median ratio.
	trials := make([]s1Trial, 0, sz.s1Trials)
	for t := 1; t <= sz.s1Trials; t++ {
		var tr s1Trial
		count := allocMeter()
		tr.raw = newMeter(sz.s1Jobs)
		pprof.Do(ctx, pprof.Labels("run", "S1 raw"), func(ctx context.Context) { err = b.fetchAll(ctx, topic, end, tr.raw, false) })
		if err != nil {
			return fmt.Errorf("raw fetch: %w", err)
		}
		tr.rawAllocs = count(sz.s1Jobs)
		b.progressf("bench S1 trial %d: raw kafka-go fetch: %.0f jobs/s, %s", t, tr.raw.rate(), tr.rawAllocs)

		count = allocMeter()
		tr.naive = newMeter(sz.s1Jobs)
		pprof.Do(ctx, pprof.Labels("run", "S1 naive"), func(ctx context.Context) { err = b.naiveReader(ctx, topic, tr.naive) })
		if err != nil {
			return fmt.Errorf("naive reader: %w", err)
		}
		b.progressf("bench S1 trial %d: naive kafka-go Reader: %.0f jobs/s, %s", t, tr.naive.rate(), count(sz.s1Jobs))

		decode := func() error {
			count := allocMeter()
			tr.decode = newMeter(sz.s1Jobs)
			pprof.Do(ctx, pprof.Labels("run", "S1 decode"), func(ctx context.Context) { err = b.fetchAll(ctx, topic, end, tr.decode, true) })
			if err != nil {
				return fmt.Errorf("fetch+decode: %w", err)
			}
			tr.decodeAllocs = count(sz.s1Jobs)
			b.progressf("bench S1 trial %d: kafka-go fetch+decode: %.0f jobs/s, %s", t, tr.decode.rate(), tr.decodeAllocs)
			return nil
		}
		ordo := func() error {
			count := allocMeter()
			m, err := b.s1Ordo(ctx, "S1 ordo", topic, false)
			if err != nil {
				return err
			}
			tr.ordo, tr.ordoAllocs = m, count(sz.s1Jobs)
			b.progressf("bench S1 trial %d: ordo: %.0f jobs/s, %s", t, tr.ordo.rate(), tr.ordoAllocs)
			return nil
		}
		pair := []func() error{decode, ordo}
		if t%2 == 0 {
			slices.Reverse(pair)
		}
		for _, run := range pair {
			if err := run(); err != nil {
				return err
			}
		}
		b.progressf("bench S1 trial %d: ordo/decode %.2f", t, tr.ratio())
		trials = append(trials, tr)
	}
	med := medianTrial(trials)
	spread := make([]string, len(trials))
	for i, tr := range trials {
		spread[i] = fmt.Sprintf("%.2f", tr.ratio())
	}

	// What the status reports cost is a few percent at most, well inside
	// the spread of single runs here. So it is the median of pairs, each
	// pair the two configurations run back to back, the first alternating
	// as in the trials: in a full run on Kafka with the reports always
	// first, the run without them was the slower in 8 of 9 pairs.
	type statusPair struct{ on, off *meter }
	var pairs []statusPair
	for pair := 1; pair <= sz.s1StatusPairs; pair++ {
		var on, off *meter
		for i := range 2 {
			disable := (pair+i)%2 == 0 // pair 1: with the reports first
			m, err := b.s1Ordo(ctx, "S1 status pair", topic, disable)
			if err != nil {
				return err
			}
			if disable {
				off = m
			} else {
				on = m
			}
		}
		pairs = append(pairs, statusPair{on, off})
		b.progressf("bench S1 status pair %d: %.0f jobs/s with the reports, %.0f without", pair, on.rate(), off.rate())
	}
	// A job's cost is the inverse of the rate: the reports add
	// off/on − 1 to it.
	cost := func(p statusPair) float64 { return (p.off.rate()/p.on.rate() - 1) * 100 }
	slices.SortFunc(pairs, func(x, y statusPair) int { return cmp.Compare(cost(x), cost(y)) })
	medPair := pairs[len(pairs)/2]

	beyondRaw := med.ordoAllocs.perJob - med.rawAllocs.perJob - argsAllocs
	beyondArgs := med.ordoAllocs.perJob - argsAllocs
	b.progressf("bench S1: median trial's allocs/job: raw %.1f, fetch+decode %.1f, ordo %.1f, args %.1f; ordo − raw − args %.1f, ordo − args %.1f",
		med.rawAllocs.perJob, med.decodeAllocs.perJob, med.ordoAllocs.perJob, argsAllocs, beyondRaw, beyondArgs)

	of := fmt.Sprintf("median of %d trials", len(trials))
	if len(trials) == 1 {
		of = "one trial"
	}
	measured := fmt.Sprintf("no-op, %d jobs, %d partitions, %d keys, %s (ordo/decode %s)",
		sz.s1Jobs, sz.s1Partitions, sz.s1Keys, of, strings.Join(spread, ", "))
	r := med.ratio()
	b.record(result{
		Scenario:    "S1",
		Measurement: measured + ": ordo against fetch+decode",
		Ordo:        fmt.Sprintf("%.0f jobs/s", med.ordo.rate()),
		Baseline:    fmt.Sprintf("fetch+decode %.0f jobs/s (raw fetch %.0f jobs/s)", med.decode.rate(), med.raw.rate()),
		Ratio:       fmt.Sprintf("%.2f (ordo/decode)", r),
		Target:      "≥ 0.8",
		Met:         met(r >= 0.8),
		Line: fmt.Sprintf("bench S1 raw=%.0f jobs/s decode=%.0f jobs/s naive=%.0f jobs/s ordo=%.0f jobs/s allocs=%.1f/job args_allocs=%.1f/job broker=%s ratio=%.2f",
			med.raw.rate(), med.decode.rate(), med.naive.rate(), med.ordo.rate(), med.ordoAllocs.perJob, argsAllocs, b.target.Name, r),
	})
	rn := med.ordo.rate() / med.naive.rate()
	b.record(result{
		Scenario:    "S1",
		Measurement: measured + ": ordo against the naive Reader, in the median trial",
		Ordo:        fmt.Sprintf("%.0f jobs/s", med.ordo.rate()),
		Baseline:    fmt.Sprintf("naive Reader %.0f jobs/s", med.naive.rate()),
		Ratio:       fmt.Sprintf("%.2f (ordo/naive)", rn),
		Target:      "≥ 2",
		Met:         met(rn >= 2),
	})
	b.record(result{
		Scenario:    "S1",
		Measurement: measured + ": allocations per job (process-wide), in the median trial",
		Ordo:        fmt.Sprintf("%.1f allocs/job (%.0f B/job)", med.ordoAllocs.perJob, med.ordoAllocs.bytesPerJob),
		Baseline: fmt.Sprintf("raw fetch %.1f allocs/job (kafka-go's own); fetch+decode %.1f; args %.1f (msgpack.Unmarshal of one NoopArgs)",
			med.rawAllocs.perJob, med.decodeAllocs.perJob, argsAllocs),
		Ratio:  fmt.Sprintf("%.1f (ordo − raw − args); ordo − args = %.1f", beyondRaw, beyondArgs),
		Target: "≤ 8 beyond the args (ordo − raw − args)",
		Met:    met(beyondRaw <= 8),
	})
	c := cost(medPair)
	b.record(result{
		Scenario: "S1",
		Measurement: fmt.Sprintf("no-op, %d jobs: cost of the status reports (default period), median of %d pairs run back to back",
			sz.s1Jobs, len(pairs)),
		Ordo:     fmt.Sprintf("%.0f jobs/s with the reports (median pair)", medPair.on.rate()),
		Baseline: fmt.Sprintf("%.0f jobs/s with DisableStatus (median pair)", medPair.off.rate()),
		Ratio: fmt.Sprintf("%+.1f%% per job (pairs %+.1f%% to %+.1f%%)", c,
			cost(pairs[0]), cost(pairs[len(pairs)-1])),
		Target: "< 2%",
		Met:    met(c < 2),
	})
	return nil
}

// s1Trial is one trial of S1: each run's meter, and what the process
// allocated during the runs that count allocations.
type s1Trial struct {
	raw, decode, naive, ordo            *meter
	rawAllocs, decodeAllocs, ordoAllocs allocs
}

func (t s1Trial) ratio() float64 { return t.ordo.rate() / t.decode.rate() }

// medianTrial is the trial whose ordo/decode ratio is the median (the
// upper of the middle two when there are an even number).
func medianTrial(trials []s1Trial) s1Trial {
	sorted := slices.Clone(trials)
	slices.SortFunc(sorted, func(x, y s1Trial) int { return cmp.Compare(x.ratio(), y.ratio()) })
	return sorted[len(sorted)/2]
}

// fetchAll reads every record of the topic with kafka-go's Fetch, one
// connection per partition as ordo's fetchers have. Without decode it reads
// each record's bytes and nothing more: the most this client can deliver.
// With decode it also decodes each job's envelope and args, as any job
// runner must: its floor.
func (b *bench) fetchAll(ctx context.Context, topic string, end map[int]int64, m *meter, decode bool) error {
	var wg sync.WaitGroup
	errs := make([]error, len(end))
	i := 0
	for p, last := range end {
		wg.Add(1)
		go func(slot, p int, last int64) {
			defer wg.Done()
			errs[slot] = fetchRange(ctx, b.target.Brokers, topic, p, 0, last, func(r *kafkago.Record) error {
				m.start()
				if r.Key != nil {
					_, _ = io.Copy(io.Discard, r.Key)
				}
				var err error
				if decode {
					err = decodeNoop(r.Value)
				} else if r.Value != nil {
					_, err = io.Copy(io.Discard, r.Value)
				}
				if err != nil {
					return fmt.Errorf("record %s/%d@%d: %w", topic, p, r.Offset, err)
				}
				m.done()
				return nil
			})
		}(i, p, last)
		i++
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	select {
	case <-m.full:
		return nil
	default:
		return fmt.Errorf("read %d of %d records", m.n.Load(), m.target)
	}
}

// decodeNoop is the least a job runner does with a record's value: own its
// bytes, decode the envelope, decode the args.
func decodeNoop(value kafkago.Bytes) error {
	if value == nil {
		return errors.New("no value")
	}
	v, err := kafkago.ReadAll(value)
	if err != nil {
		return err
	}
	env, err := envelope.Decode(v)
	if err != nil {
		return err
	}
	var args NoopArgs
	return msgpack.Unmarshal(env.Args, &args)
}

// fetchRange calls each for the records of one partition in [from, end),
// fetched with kafka-go's Client.Fetch over a connection of its own.
func fetchRange(ctx context.Context, brokers []string, topic string, partition int, from, end int64, each func(*kafkago.Record) error) error {
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: tr, Timeout: 30 * time.Second}
	for next := from; next < end; {
		resp, err := client.Fetch(ctx, &kafkago.FetchRequest{
			Topic: topic, Partition: partition, Offset: next,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond,
		})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, next, err)
		}
		for next < end {
			r, err := resp.Records.ReadRecord()
			if err != nil {
				break // io.EOF, or a batch cut short by MaxBytes: fetch again from next
			}
			if r.Offset < next {
				continue // a batch may start before the requested offset
			}
			if err := each(r); err != nil {
				return err
			}
			next = r.Offset + 1
		}
	}
	return nil
}

// naiveReader is what users write by hand: one kafka-go Reader in the group,
// reading, decoding and handling one job at a time, with offsets committed
// in the background each second.
func (b *bench) naiveReader(ctx context.Context, topic string, m *meter) error {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        b.target.Brokers,
		GroupID:        uniqueName("bench-naive"),
		Topic:          topic,
		MinBytes:       1,
		MaxBytes:       1 << 20,
		MaxWait:        250 * time.Millisecond,
		CommitInterval: time.Second,
		StartOffset:    kafkago.FirstOffset,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for m.n.Load() < m.target {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			return err
		}
		m.start()
		env, err := envelope.Decode(msg.Value)
		if err != nil {
			return err
		}
		var args NoopArgs
		if err := msgpack.Unmarshal(env.Args, &args); err != nil {
			return err
		}
		m.done()
		select {
		case <-tick.C:
			b.progressf("bench S1 naive: %d/%d done", m.n.Load(), m.target)
		default:
		}
	}
	return nil
}

// allocs is what the process allocated during a run, per job.
type allocs struct{ perJob, bytesPerJob float64 }

func (a allocs) String() string {
	return fmt.Sprintf("%.1f allocs/job, %.0f B/job allocated", a.perJob, a.bytesPerJob)
}

// allocMeter reads the process's allocations; the func it returns says how
// many were made since, per job. Process-wide: it includes the kafka-go
// connections' decoding, the group's own work and an embedded broker's.
func allocMeter() func(jobs int) allocs {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	return func(jobs int) allocs {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		return allocs{
			perJob:      float64(after.Mallocs-before.Mallocs) / float64(jobs),
			bytesPerJob: float64(after.TotalAlloc-before.TotalAlloc) / float64(jobs),
		}
	}
}

// unmarshalAllocs counts what msgpack.Unmarshal of args allocates, the way
// testing.AllocsPerRun does: the part of a job's allocations that its args
// cost whatever runs them.
func unmarshalAllocs(args NoopArgs) (float64, error) {
	b, err := msgpack.Marshal(args)
	if err != nil {
		return 0, err
	}
	var into NoopArgs
	if err := msgpack.Unmarshal(b, &into); err != nil { // warm up msgpack's type cache
		return 0, err
	}
	const runs = 10_000
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		_ = msgpack.Unmarshal(b, &into)
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / runs, nil
}

// s1Ordo runs a server over S1's topic with a no-op worker, with or without
// the status reports, and returns its meter.
func (b *bench) s1Ordo(ctx context.Context, run, topic string, disableStatus bool) (*meter, error) {
	m := newMeter(b.sizes.s1Jobs)
	w := jobs.NewWorkers()
	if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[NoopArgs]) error {
		m.start()
		m.done()
		return nil
	})); err != nil {
		return nil, err
	}
	cfg := b.serverConfig(topic, 100, w)
	cfg.DisableStatus = disableStatus
	return m, b.runServer(ctx, run, cfg, m, 3*time.Minute)
}
