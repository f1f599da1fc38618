package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/ordo-go/ordo/jobs"
)

// s4 measures memory while a slow handler works through a backlog: peak RSS
// and peak heap of a process that runs only the jobs.Server, sampled over a
// fixed window, for each backlog size, with the backlog written in chunks
// (EnqueueMany) and again with one Enqueue per job (a record batch per
// job). Each size tops up the same topic, so each backlog is produced once.
// The server runs in a child process so that neither the producer nor an
// embedded broker (which holds the whole backlog in memory) counts towards
// its RSS. Then S4 amplification: the live heap of a server holding records
// of the one-record backlog, against the bytes of those records.
func (b *bench) s4(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S4: memory, backlogs %v (one-record: %v) over %d keys, %d partitions, %v jobs, c=%d, MaxBuffered %d, window %v, chunked and one record per batch",
		sz.s4Backlogs, sz.s4OneRecordBacklogs, sz.s4Keys, sz.s4Partitions, sz.s4Work, sz.s4Concurrency, sz.s4MaxBuf, sz.s4Window)
	if _, err := b.s4Shape(ctx, chunked); err != nil {
		return err
	}
	topic, err := b.s4Shape(ctx, oneRecord)
	if err != nil {
		return err
	}
	return b.s4Amplification(ctx, topic)
}

// s4Shape runs S4 over backlogs of one shape and returns their topic, which
// holds the largest backlog.
func (b *bench) s4Shape(ctx context.Context, shape backlogShape) (string, error) {
	sz := b.sizes
	topic, err := b.newTopic(ctx, "s4", sz.s4Partitions)
	if err != nil {
		return "", err
	}
	name := "S4"
	if shape == oneRecord {
		name = "S4 one-record"
	}
	backlogs := sz.s4Backlogs
	if shape == oneRecord {
		backlogs = sz.s4OneRecordBacklogs
	}
	work := int(sz.s4Work / time.Microsecond)
	produced := 0
	var first childResult
	for i, backlog := range backlogs {
		from := produced
		err := b.enqueueShaped(ctx, shape, fmt.Sprintf("%s backlog=%d", name, backlog), topic, backlog-from, func(i int) jobs.JobArgs {
			return SleepArgs{Key: "key-" + strconv.Itoa((from+i)%sz.s4Keys), Micros: work}
		})
		if err != nil {
			return "", err
		}
		produced = backlog
		if i == 0 {
			bs, err := b.batchShape(ctx, topic)
			if err != nil {
				return "", fmt.Errorf("reading the backlog's batches: %w", err)
			}
			b.progressf("bench %s: partition 0 begins with %d records in %d record batches (%.1f per batch), %.0f bytes of key, value and headers per record",
				name, bs.records, bs.batches, float64(bs.records)/float64(bs.batches), bs.recordBytes)
			if shape == oneRecord && bs.records != bs.batches {
				return "", fmt.Errorf("the one-record backlog has %d records in %d batches", bs.records, bs.batches)
			}
		}
		res, err := b.runChild(ctx, childConfig{
			Label:   fmt.Sprintf("%s backlog=%d", name, backlog),
			Brokers: b.target.Brokers, Topic: topic, Group: uniqueName("bench-s4"),
			Concurrency: sz.s4Concurrency, MaxBuffered: sz.s4MaxBuf, Window: sz.s4Window,
		})
		if err != nil {
			return "", fmt.Errorf("%s backlog %d: %w", shape, backlog, err)
		}
		if i == 0 {
			first = res
		}
		bufBound := sz.s4MaxBuf * sz.s4Partitions
		b.progressf("bench %s backlog=%d: peak RSS %.1f MB, peak heap %.1f MB, %d jobs done in %v, peak buffered %d (bound %d), peak live keys %d",
			name, backlog, mb(res.PeakRSS), mb(res.PeakHeap), res.Done, sz.s4Window, res.PeakBuffered, bufBound, res.PeakKeys)
		r := float64(res.PeakRSS) / float64(first.PeakRSS)
		const limit = 256 << 20
		ok := res.PeakRSS <= limit && r <= 1.2
		written := "written in chunks of EnqueueMany"
		if shape == oneRecord {
			written = "written with one Enqueue per job, one record per batch"
		}
		b.record(result{
			Scenario: "S4",
			Measurement: fmt.Sprintf("backlog=%d over %d keys, %s (%d partitions, %v jobs, c=%d, %v window)",
				backlog, sz.s4Keys, written, sz.s4Partitions, sz.s4Work, sz.s4Concurrency, sz.s4Window),
			Ordo: fmt.Sprintf("peak RSS %.1f MB, heap %.1f MB (buffered ≤ %d, bound %d; live keys ≤ %d; %d jobs done)",
				mb(res.PeakRSS), mb(res.PeakHeap), res.PeakBuffered, bufBound, res.PeakKeys, res.Done),
			Baseline: fmt.Sprintf("limit 256 MB; RSS at backlog %d: %.1f MB", backlogs[0], mb(first.PeakRSS)),
			Ratio:    fmt.Sprintf("%.2f (RSS / RSS at %d)", r, backlogs[0]),
			Target:   "≤ 256 MB, flat (≤ 1.2)",
			Met:      met(ok),
			Line: fmt.Sprintf("bench %s backlog=%d: peak_rss=%.1f MB heap=%.1f MB limit=256 MB broker=%s ratio=%.2f",
				name, backlog, mb(res.PeakRSS), mb(res.PeakHeap), b.target.Name, r),
		})
	}
	return topic, nil
}

// s4Amplification runs a server over topic, a one-record backlog, for S4's
// window and reads its live heap after a GC while it holds records. The
// constant part is the live heap of the same server over a topic without
// records, read in the same process first; the rest is held against the
// bytes (key, value, headers) of the records the server holds.
func (b *bench) s4Amplification(ctx context.Context, topic string) error {
	sz := b.sizes
	empty, err := b.newTopic(ctx, "s4-empty", sz.s4Partitions)
	if err != nil {
		return err
	}
	bs, err := b.batchShape(ctx, topic)
	if err != nil {
		return fmt.Errorf("reading the backlog's records: %w", err)
	}
	res, err := b.runChild(ctx, childConfig{
		Label:   "S4 amplification",
		Brokers: b.target.Brokers, Topic: topic, Group: uniqueName("bench-s4"),
		Concurrency: sz.s4Concurrency, MaxBuffered: sz.s4MaxBuf, Window: sz.s4Window,
		EmptyTopic: empty, EmptyPartitions: sz.s4Partitions,
	})
	if err != nil {
		return fmt.Errorf("amplification: %w", err)
	}
	if res.Held == 0 {
		return fmt.Errorf("amplification: the server held no records at the end of its %v window", sz.s4Window)
	}
	heldBytes := res.Held * bs.recordBytes
	amp := (float64(res.HeldHeap) - float64(res.ConstantHeap)) / heldBytes
	const maxAmp, maxConstant = 4, 32 << 20
	b.progressf("bench S4 amplification: live heap %.1f MB holding %.0f records of %.0f bytes (%.2f MB); %.1f MB with nothing held",
		mb(res.HeldHeap), res.Held, bs.recordBytes, heldBytes/(1<<20), mb(res.ConstantHeap))
	b.record(result{
		Scenario: "S4",
		Measurement: fmt.Sprintf("amplification: live heap after GC at the end of the %v window over the one-record backlog of %d, "+
			"less the live heap of the same server over an empty topic (the constant), over the bytes (key, value, headers) of the records it holds",
			sz.s4Window, sz.s4OneRecordBacklogs[len(sz.s4OneRecordBacklogs)-1]),
		Ordo: fmt.Sprintf("%.1f MB live holding %.0f records (%.2f MB); constant %.1f MB",
			mb(res.HeldHeap), res.Held, heldBytes/(1<<20), mb(res.ConstantHeap)),
		Baseline: "the bytes of the records held",
		Ratio:    fmt.Sprintf("%.1f ((heap − constant) / bytes held)", amp),
		Target:   "≤ 4, constant ≤ 32 MB",
		Met:      met(amp <= maxAmp && res.ConstantHeap <= maxConstant),
		Line: fmt.Sprintf("bench S4 amplification: held=%.0f held_bytes=%.2f MB heap=%.1f MB constant=%.1f MB amplification=%.1f broker=%s ratio=%.1f",
			res.Held, heldBytes/(1<<20), mb(res.HeldHeap), mb(res.ConstantHeap), amp, b.target.Name, amp),
	})
	return nil
}

// fetchedShape is what the first fetch of a topic's partition 0 holds.
type fetchedShape struct {
	records, batches int
	recordBytes      float64 // key, value and headers, on average
}

// batchShape reads the first megabyte of topic's partition 0 and counts its
// record batches and records, as the broker stores them.
func (b *bench) batchShape(ctx context.Context, topic string) (fetchedShape, error) {
	c := &kafkago.Client{Addr: kafkago.TCP(b.target.Brokers...), Timeout: 30 * time.Second}
	res, err := c.Fetch(ctx, &kafkago.FetchRequest{Topic: topic, Partition: 0, Offset: 0, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second})
	if err != nil {
		return fetchedShape{}, err
	}
	if res.Error != nil {
		return fetchedShape{}, res.Error
	}
	var shape fetchedShape
	var bytes int
	stream, ok := res.Records.(*protocol.RecordStream)
	if !ok {
		return fetchedShape{}, fmt.Errorf("fetch returned %T, not record batches", res.Records)
	}
	for _, batch := range stream.Records {
		for n := 0; ; n++ {
			r, err := batch.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				// The last batch of a fetch may be cut short by MaxBytes.
				if shape.records > 0 {
					break
				}
				return fetchedShape{}, err
			}
			if n == 0 {
				shape.batches++
			}
			shape.records++
			if r.Key != nil {
				bytes += r.Key.Len()
			}
			if r.Value != nil {
				bytes += r.Value.Len()
			}
			for _, h := range r.Headers {
				bytes += len(h.Key) + len(h.Value)
			}
		}
	}
	if shape.records == 0 {
		return fetchedShape{}, fmt.Errorf("partition 0 of %s has no records", topic)
	}
	shape.recordBytes = float64(bytes) / float64(shape.records)
	return shape, nil
}

func mb(bytes uint64) float64 { return float64(bytes) / (1 << 20) }
