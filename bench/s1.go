package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ordo-go/ordo/internal/envelope"
	"io"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/vmihailenco/msgpack/v5"

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

	// The machine is shared and the runs are short, so each measurement
	// is the best of s1Trials, the four taken in turn: noise only ever
	// slows a run, and it then slows ordo and its baselines alike.
	var raw, decode, naive, ordo, statusOff *meter
	var statusRatios []float64 // per pair of runs, status off / on
	var rawAllocs, decodeAllocs, ordoAllocs allocs
	for t := 1; t <= sz.s1Trials; t++ {
		m := newMeter(sz.s1Jobs)
		count := allocMeter()
		pprof.Do(ctx, pprof.Labels("run", "S1 raw"), func(ctx context.Context) { err = b.fetchAll(ctx, topic, end, m, false) })
		if err != nil {
			return fmt.Errorf("raw fetch: %w", err)
		}
		a := count(sz.s1Jobs)
		b.progressf("bench S1 trial %d: raw kafka-go fetch: %.0f jobs/s, %s", t, m.rate(), a)
		if raw == nil || m.rate() > raw.rate() {
			raw, rawAllocs = m, a
		}

		m = newMeter(sz.s1Jobs)
		count = allocMeter()
		pprof.Do(ctx, pprof.Labels("run", "S1 decode"), func(ctx context.Context) { err = b.fetchAll(ctx, topic, end, m, true) })
		if err != nil {
			return fmt.Errorf("fetch+decode: %w", err)
		}
		a = count(sz.s1Jobs)
		b.progressf("bench S1 trial %d: kafka-go fetch+decode: %.0f jobs/s, %s", t, m.rate(), a)
		if decode == nil || m.rate() > decode.rate() {
			decode, decodeAllocs = m, a
		}

		m = newMeter(sz.s1Jobs)
		count = allocMeter()
		pprof.Do(ctx, pprof.Labels("run", "S1 naive"), func(ctx context.Context) { err = b.naiveReader(ctx, topic, m) })
		if err != nil {
			return fmt.Errorf("naive reader: %w", err)
		}
		b.progressf("bench S1 trial %d: naive kafka-go Reader: %.0f jobs/s, %s", t, m.rate(), count(sz.s1Jobs))
		if naive == nil || m.rate() > naive.rate() {
			naive = m
		}

		count = allocMeter()
		if m, err = b.s1Ordo(ctx, "S1 ordo", topic, false); err != nil {
			return err
		}
		a = count(sz.s1Jobs)
		b.progressf("bench S1 trial %d: ordo: %.0f jobs/s, %s", t, m.rate(), a)
		if ordo == nil || m.rate() > ordo.rate() {
			ordo, ordoAllocs = m, a
		}
	}
	// What the status reports cost is a few percent at most, well inside
	// the spread of single runs here (a baseline moves by a quarter from
	// one run to the next). So it is the median of pairs, each pair the
	// two configurations run back to back, which shared noise moves alike.
	for pair := 1; pair <= sz.s1StatusPairs; pair++ {
		on, err := b.s1Ordo(ctx, "S1 status pair", topic, false)
		if err != nil {
			return err
		}
		off, err := b.s1Ordo(ctx, "S1 status pair", topic, true)
		if err != nil {
			return err
		}
		if statusOff == nil || off.rate() > statusOff.rate() {
			statusOff = off
		}
		statusRatios = append(statusRatios, off.rate()/on.rate())
		b.progressf("bench S1 status pair %d: %.0f jobs/s with the reports, %.0f without", pair, on.rate(), off.rate())
	}
	slices.Sort(statusRatios)
	beyondRaw := ordoAllocs.perJob - rawAllocs.perJob - argsAllocs
	beyondArgs := ordoAllocs.perJob - argsAllocs
	b.progressf("bench S1: allocs/job: raw %.1f, fetch+decode %.1f, ordo %.1f, args %.1f; ordo − raw − args %.1f, ordo − args %.1f",
		rawAllocs.perJob, decodeAllocs.perJob, ordoAllocs.perJob, argsAllocs, beyondRaw, beyondArgs)

	measured := fmt.Sprintf("no-op, %d jobs, %d partitions, %d keys, best of %d", sz.s1Jobs, sz.s1Partitions, sz.s1Keys, sz.s1Trials)
	r := ordo.rate() / decode.rate()
	b.record(result{
		Scenario:    "S1",
		Measurement: measured + ": ordo against fetch+decode",
		Ordo:        fmt.Sprintf("%.0f jobs/s", ordo.rate()),
		Baseline:    fmt.Sprintf("fetch+decode %.0f jobs/s (raw fetch %.0f jobs/s)", decode.rate(), raw.rate()),
		Ratio:       fmt.Sprintf("%.2f (ordo/decode)", r),
		Target:      "≥ 0.7",
		Met:         met(r >= 0.7),
		Line: fmt.Sprintf("bench S1 raw=%.0f jobs/s decode=%.0f jobs/s naive=%.0f jobs/s ordo=%.0f jobs/s allocs=%.1f/job args_allocs=%.1f/job broker=%s ratio=%.2f",
			raw.rate(), decode.rate(), naive.rate(), ordo.rate(), ordoAllocs.perJob, argsAllocs, b.target.Name, r),
	})
	rn := ordo.rate() / naive.rate()
	b.record(result{
		Scenario:    "S1",
		Measurement: measured + ": ordo against the naive Reader",
		Ordo:        fmt.Sprintf("%.0f jobs/s", ordo.rate()),
		Baseline:    fmt.Sprintf("naive Reader %.0f jobs/s", naive.rate()),
		Ratio:       fmt.Sprintf("%.2f (ordo/naive)", rn),
		Target:      "≥ 2",
		Met:         met(rn >= 2),
	})
	b.record(result{
		Scenario:    "S1",
		Measurement: measured + ": allocations per job (process-wide)",
		Ordo:        fmt.Sprintf("%.1f allocs/job (%.0f B/job)", ordoAllocs.perJob, ordoAllocs.bytesPerJob),
		Baseline: fmt.Sprintf("raw fetch %.1f allocs/job (kafka-go's own); fetch+decode %.1f; args %.1f (msgpack.Unmarshal of one NoopArgs)",
			rawAllocs.perJob, decodeAllocs.perJob, argsAllocs),
		Ratio:  fmt.Sprintf("%.1f (ordo − raw − args); ordo − args = %.1f", beyondRaw, beyondArgs),
		Target: "≤ 8 beyond the args (ordo − raw − args)",
		Met:    met(beyondRaw <= 8),
	})
	// A job's cost is the inverse of the rate: the reports add
	// off/on − 1 to it.
	cost := (statusRatios[len(statusRatios)/2] - 1) * 100
	b.record(result{
		Scenario: "S1",
		Measurement: fmt.Sprintf("no-op, %d jobs: cost of the status reports (default period), median of %d pairs run back to back",
			sz.s1Jobs, len(statusRatios)),
		Ordo:     fmt.Sprintf("%.0f jobs/s with the reports (best of %d)", ordo.rate(), sz.s1Trials),
		Baseline: fmt.Sprintf("%.0f jobs/s with DisableStatus (best of the pairs)", statusOff.rate()),
		Ratio: fmt.Sprintf("%+.1f%% per job (pairs %+.1f%% to %+.1f%%)", cost,
			(statusRatios[0]-1)*100, (statusRatios[len(statusRatios)-1]-1)*100),
		Target: "< 2%",
		Met:    met(cost < 2),
	})
	return nil
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
