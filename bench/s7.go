package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// s7 is bad input: the same good jobs, once in a clean topic and once with
// undecodable records among them that route to the same keys and must go to
// the dead-letter topic. It compares the good jobs' rate; a run counts only
// if every good job ran once and the dead-letter topic then holds every bad
// record, once. Clean and bad runs alternate; the best of each is kept.
func (b *bench) s7(ctx context.Context) error {
	sz := b.sizes
	nBad := sz.s7Jobs / sz.s7BadEvery
	b.progressf("bench S7: bad input, %d jobs of %v over %d keys + %d undecodable records, %d partitions, c=%d, %d trials",
		sz.s7Jobs, sz.s7Work, sz.s7Keys, nBad, sz.s7Partitions, sz.s7Concurrency, sz.s7Trials)
	work := int(sz.s7Work / time.Microsecond)
	job := func(i int) SleepArgs { return SleepArgs{Key: "key-" + strconv.Itoa(i%sz.s7Keys), Micros: work} }
	clean, err := b.newTopic(ctx, "s7-clean", sz.s7Partitions)
	if err != nil {
		return err
	}
	if err := b.enqueue(ctx, "S7 clean", clean, sz.s7Jobs, func(i int) jobs.JobArgs { return job(i) }); err != nil {
		return err
	}
	dirty, err := b.newTopic(ctx, "s7-bad", sz.s7Partitions)
	if err != nil {
		return err
	}
	// The server's default dead-letter topic; one partition, so that each
	// run's dead letters follow the previous run's.
	dlq := dirty + ".dlq"
	if err := b.createTopic(ctx, dlq, 1); err != nil {
		return err
	}
	bad, err := b.enqueueWithBad(ctx, dirty, job)
	if err != nil {
		return err
	}
	var cleanRates, badRates []float64
	for t := 1; t <= sz.s7Trials; t++ {
		r, err := b.s7Run(ctx, fmt.Sprintf("S7 clean %d", t), clean, nil)
		if err != nil {
			return err
		}
		cleanRates = append(cleanRates, r)
		dead := &deadLetters{topic: dlq, bad: bad, from: int64((t - 1) * nBad)}
		if r, err = b.s7Run(ctx, fmt.Sprintf("S7 bad %d", t), dirty, dead); err != nil {
			return err
		}
		badRates = append(badRates, r)
	}
	got, base := slices.Max(badRates), slices.Max(cleanRates)
	r := got / base
	pct := 100 * nBad / sz.s7Jobs
	b.record(result{
		Scenario: "S7",
		Measurement: fmt.Sprintf("bad=%d%%: %d × %v jobs over %d keys + %d undecodable records on the same keys (%d partitions, c=%d); best of %d, alternating with clean",
			pct, sz.s7Jobs, sz.s7Work, sz.s7Keys, nBad, sz.s7Partitions, sz.s7Concurrency, sz.s7Trials),
		Ordo: fmt.Sprintf("%.0f good jobs/s (runs: %s); every bad record dead-lettered once in each run",
			got, rates(badRates)),
		Baseline: fmt.Sprintf("clean topic %.0f jobs/s (runs: %s)", base, rates(cleanRates)),
		Ratio:    fmt.Sprintf("%.2f (bad/clean)", r),
		Target:   "≥ 0.9",
		Met:      met(r >= 0.9),
		Line: fmt.Sprintf("bench S7 bad=%d%%: ordo=%.0f jobs/s clean=%.0f jobs/s broker=%s ratio=%.2f",
			pct, got, base, b.target.Name, r),
	})
	return nil
}

func rates(rs []float64) string {
	var s []string
	for _, r := range rs {
		s = append(s, strconv.FormatFloat(r, 'f', 0, 64))
	}
	return strings.Join(s, ", ")
}

// position is where a record was written.
type position struct {
	Partition int
	Offset    int64
}

// enqueueWithBad enqueues the good jobs with jobs.Client and, after each
// s7BadEvery of them, writes an undecodable record with kafka.Producer: its
// value is not a msgpack map, its kind header names the good jobs' kind and
// its key is a good job's, so it reaches a key actor that has good jobs
// too. It returns the bad records' values by position.
func (b *bench) enqueueWithBad(ctx context.Context, topic string, job func(i int) SleepArgs) (map[position][]byte, error) {
	sz := b.sizes
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.target.Brokers, Topic: topic, Logger: b.logger})
	if err != nil {
		return nil, err
	}
	defer client.Close()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: b.target.Brokers, Logger: b.logger})
	if err != nil {
		return nil, err
	}
	defer producer.Close()
	kind := []byte(SleepArgs{}.Kind())
	var mu sync.Mutex
	bad := map[position][]byte{}
	err = b.produce(ctx, "S7 bad", topic, sz.s7Jobs, 10*sz.s7BadEvery, 4, func(ctx context.Context, _, from, to int) error {
		params := make([]jobs.EnqueueParams, 0, to-from)
		var msgs []kafka.Message
		for i := from; i < to; i++ {
			params = append(params, jobs.EnqueueParams{Args: job(i)})
			if (i+1)%sz.s7BadEvery == 0 {
				msgs = append(msgs, kafka.Message{
					Topic:   topic,
					Key:     []byte(job(i).Key),
					Value:   []byte("\xc1 bench S7: not a job, bad record " + strconv.Itoa(i/sz.s7BadEvery)),
					Headers: []kafka.Header{{Key: jobs.HeaderKind, Value: kind}},
				})
			}
		}
		if _, err := client.EnqueueMany(ctx, params); err != nil {
			return err
		}
		ds, err := producer.ProduceSync(ctx, msgs...)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for j, d := range ds {
			bad[position{d.Partition, d.Offset}] = msgs[j].Value
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if want := sz.s7Jobs / sz.s7BadEvery; len(bad) != want {
		return nil, fmt.Errorf("wrote %d bad records, want %d", len(bad), want)
	}
	return bad, nil
}

// s7Run runs a server over topic until every good job ran and, for the bad
// topic, every bad record was dead-lettered; it returns the good jobs' rate.
func (b *bench) s7Run(ctx context.Context, what, topic string, dead *deadLetters) (float64, error) {
	sz := b.sizes
	m := newMeter(sz.s7Jobs)
	cfg := b.serverConfig(topic, sz.s7Concurrency, sleepWorker(m, time.Sleep))
	var logged atomic.Int64
	cfg.Logger = slog.New(deadLetterCounter{b.logger.Handler(), &logged})
	bound := time.Duration(sz.s7Jobs) * sz.s7Work / time.Duration(sz.s7Concurrency)
	var settled func(context.Context) error
	if dead != nil {
		settled = func(ctx context.Context) error { return dead.written(ctx, b.admin) }
	}
	if err := b.serve(ctx, what, cfg, m, 10*bound+time.Minute, settled); err != nil {
		return 0, err
	}
	if n := m.n.Load(); n != m.target {
		return 0, fmt.Errorf("%s: %d good jobs ran, want %d", what, n, m.target)
	}
	if dead != nil {
		if err := dead.check(ctx, b.admin, b.target.Brokers); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
	}
	b.progressf("bench %s: %.0f good jobs/s in %v; %d dead-lettered (as logged)",
		what, m.rate(), m.elapsed().Round(time.Millisecond), logged.Load())
	return m.rate(), nil
}

// deadLetters is what a run over the bad records must leave in the
// dead-letter topic: each of them, once, after what earlier runs left.
type deadLetters struct {
	topic string
	bad   map[position][]byte
	from  int64 // the topic's end offset before the run
}

func (d *deadLetters) end(ctx context.Context, admin *kafka.Admin) (int64, error) {
	end, err := admin.EndOffsets(ctx, d.topic)
	return end[0], err
}

// written waits until the run has written as many dead letters as there
// are bad records: a bad record after a key's last good job may still be on
// its way when the good jobs are done.
func (d *deadLetters) written(ctx context.Context, admin *kafka.Admin) error {
	var end int64
	var err error
	want := d.from + int64(len(d.bad))
	perr := poll(ctx, time.Minute, 20*time.Millisecond, func() bool {
		end, err = d.end(ctx, admin)
		return err != nil || end >= want
	})
	if err != nil {
		return err
	}
	if perr != nil {
		return fmt.Errorf("dead-letter topic %s: %d of %d bad records: %w", d.topic, end-d.from, len(d.bad), perr)
	}
	return nil
}

// check reads what the run dead-lettered and compares it with the bad
// records: the same values from the same positions, each once.
func (d *deadLetters) check(ctx context.Context, admin *kafka.Admin, brokers []string) error {
	end, err := d.end(ctx, admin)
	if err != nil {
		return err
	}
	if n := end - d.from; n != int64(len(d.bad)) {
		return fmt.Errorf("dead-letter topic %s holds %d records from this run, want the %d bad ones", d.topic, n, len(d.bad))
	}
	seen := map[position]bool{}
	err = fetchRange(ctx, brokers, d.topic, 0, d.from, end, func(r *kafkago.Record) error {
		var pos position
		for _, h := range r.Headers {
			switch h.Key {
			case jobs.HeaderSourcePartition:
				pos.Partition, _ = strconv.Atoi(string(h.Value))
			case jobs.HeaderSourceOffset:
				pos.Offset, _ = strconv.ParseInt(string(h.Value), 10, 64)
			}
		}
		want, ok := d.bad[pos]
		if !ok {
			return fmt.Errorf("dead letter at %d is from %+v, not a bad record", r.Offset, pos)
		}
		if seen[pos] {
			return fmt.Errorf("bad record %+v dead-lettered twice", pos)
		}
		seen[pos] = true
		if r.Value == nil {
			return fmt.Errorf("dead letter at %d has no value", r.Offset)
		}
		got, err := kafkago.ReadAll(r.Value)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("dead letter of %+v is %q, want %q", pos, got, want)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", d.topic, err)
	}
	return nil
}

// deadLetterCounter passes ordo's logs on but counts, instead of writing,
// the line each dead-lettered job logs: S7 dead-letters thousands on
// purpose.
type deadLetterCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h deadLetterCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "dead-lettered") {
		h.n.Add(1)
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h deadLetterCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return deadLetterCounter{h.Handler.WithAttrs(as), h.n}
}

func (h deadLetterCounter) WithGroup(name string) slog.Handler {
	return deadLetterCounter{h.Handler.WithGroup(name), h.n}
}
