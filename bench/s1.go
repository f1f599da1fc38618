package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/jobs"
)

// s1 is no-op throughput: the same pre-produced jobs read by (a) raw
// kafka-go fetches, (b) a naive sequential kafka-go Reader that decodes each
// job, (c) ordo end to end.
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

	raw := newMeter(sz.s1Jobs)
	allocs := allocMeter()
	pprof.Do(ctx, pprof.Labels("run", "S1 raw"), func(ctx context.Context) { err = b.rawFetch(ctx, topic, end, raw) })
	if err != nil {
		return fmt.Errorf("raw fetch: %w", err)
	}
	b.progressf("bench S1: raw kafka-go fetch: %.0f jobs/s, %s", raw.rate(), allocs(sz.s1Jobs))

	naive := newMeter(sz.s1Jobs)
	allocs = allocMeter()
	pprof.Do(ctx, pprof.Labels("run", "S1 naive"), func(ctx context.Context) { err = b.naiveReader(ctx, topic, naive) })
	if err != nil {
		return fmt.Errorf("naive reader: %w", err)
	}
	b.progressf("bench S1: naive kafka-go Reader: %.0f jobs/s, %s", naive.rate(), allocs(sz.s1Jobs))

	ordo := newMeter(sz.s1Jobs)
	w := jobs.NewWorkers()
	if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[NoopArgs]) error {
		ordo.start()
		ordo.done()
		return nil
	})); err != nil {
		return err
	}
	allocs = allocMeter()
	if err := b.runServer(ctx, "S1 ordo", b.serverConfig(topic, 100, w), ordo, 3*time.Minute); err != nil {
		return err
	}
	b.progressf("bench S1: ordo: %.0f jobs/s, %s", ordo.rate(), allocs(sz.s1Jobs))

	r := ordo.rate() / raw.rate()
	b.record(result{
		Scenario:    "S1",
		Measurement: fmt.Sprintf("no-op, %d jobs, %d partitions, %d keys", sz.s1Jobs, sz.s1Partitions, sz.s1Keys),
		Ordo:        fmt.Sprintf("%.0f jobs/s", ordo.rate()),
		Baseline:    fmt.Sprintf("raw fetch %.0f jobs/s; naive Reader %.0f jobs/s", raw.rate(), naive.rate()),
		Ratio:       fmt.Sprintf("%.2f (ordo/raw)", r),
		Target:      "≥ 0.6",
		Met:         met(r >= 0.6),
		Line: fmt.Sprintf("bench S1 raw=%.0f jobs/s naive=%.0f jobs/s ordo=%.0f jobs/s broker=%s ratio=%.2f",
			raw.rate(), naive.rate(), ordo.rate(), b.target.Name, r),
	})
	return nil
}

// rawFetch reads every record of the topic with kafka-go's Fetch, one
// connection per partition as ordo's fetchers have, reading each record's
// bytes and nothing more: the most this client can deliver.
func (b *bench) rawFetch(ctx context.Context, topic string, end map[int]int64, m *meter) error {
	var wg sync.WaitGroup
	errs := make([]error, len(end))
	i := 0
	for p, last := range end {
		wg.Add(1)
		go func(slot, p int, last int64) {
			defer wg.Done()
			errs[slot] = fetchPartition(ctx, b.target.Brokers, topic, p, last, m)
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

func fetchPartition(ctx context.Context, brokers []string, topic string, partition int, end int64, m *meter) error {
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: tr, Timeout: 30 * time.Second}
	for next := int64(0); next < end; {
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
		m.start()
		for {
			r, err := resp.Records.ReadRecord()
			if err != nil {
				break
			}
			if r.Offset < next {
				continue
			}
			if r.Key != nil {
				_, _ = io.Copy(io.Discard, r.Key)
			}
			if r.Value != nil {
				_, _ = io.Copy(io.Discard, r.Value)
			}
			next = r.Offset + 1
			m.done()
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
		env, err := jobs.DecodeEnvelope(msg.Value)
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

// allocMeter reads the process's allocations; the func it returns says how
// many were made since, per job. Process-wide: it includes the kafka-go
// connections' decoding and the group's own work.
func allocMeter() func(jobs int) string {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	return func(jobs int) string {
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		return fmt.Sprintf("%.1f allocs/job, %.0f B/job allocated",
			float64(after.Mallocs-before.Mallocs)/float64(jobs), float64(after.TotalAlloc-before.TotalAlloc)/float64(jobs))
	}
}
