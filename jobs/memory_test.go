package jobs_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// A job enqueued by one Enqueue call is a record batch of one record, the
// way most services write jobs. A server holding a backlog of them (its
// keys busy, MaxBuffered full, the rest of a fetch response waiting) keeps
// memory in proportion to the records it holds, not a 64 KiB decoding page
// per batch. The bound is derived from the settings: per partition,
// MaxBuffered records plus one fetch response of records, each counted four
// times, plus 32 MB for everything else.
//
// Not parallel: it measures the process's live heap.
func TestOneRecordBatchesHoldMemoryInProportionToTheirRecords(t *testing.T) {
	// 3000 a partition: MaxBuffered (1000) held, and more than a full fetch
	// response (1 MiB, some 900 of these records) waiting behind it.
	const partitions, jobsPerPartition, producers = 4, 3000, 48
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// One job as a Client writes it, then copies of it, each its own
	// record batch (a producer that sends one message per batch).
	scratch := env.Topic(t, 1)
	if _, err := newClient(t, env, scratch).Enqueue(ctx, GreetArgs{User: strings.Repeat("u", 500)}); err != nil {
		t.Fatal(err)
	}
	job := env.ReadAll(t, scratch)[0]
	msgs := make([]kafka.Message, 0, partitions*jobsPerPartition)
	recordBytes := len(job.Key) + len(job.Value)
	for _, h := range job.Headers {
		recordBytes += len(h.Key) + len(h.Value)
	}
	for i := range partitions * jobsPerPartition {
		msgs = append(msgs, kafka.Message{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i%1000), Value: job.Value, Headers: job.Headers})
	}
	// A producer sends one batch at a time per partition, and a batch of
	// one record per request is slow: several producers share the work.
	var produced sync.WaitGroup
	errs := make(chan error, producers)
	for chunk := range slices.Chunk(msgs, len(msgs)/producers) {
		produced.Go(func() {
			p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, BatchSize: 1, Logger: testLogger(t)})
			if err == nil {
				_, err = p.ProduceSync(ctx, chunk...)
				p.Close()
			}
			errs <- err
		})
	}
	produced.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	held := make(chan struct{})
	ws := jobs.NewWorkers()
	mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[GreetArgs]) error {
		select {
		case <-held:
		case <-ctx.Done():
		}
		return nil
	}))
	cfg := serverConfig(t, env, topic, ws)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s := startJobServer(t, cfg)
	full := func() bool {
		st := s.Stats()
		if len(st) != partitions {
			return false
		}
		for _, p := range st {
			if p.Buffered < jobs.DefaultMaxBuffered {
				return false
			}
		}
		return true
	}
	kafkatest.WaitFor(t, time.Minute, "every partition to hold MaxBuffered jobs", full)
	runtime.GC()
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	close(held)

	grew := int64(during.HeapAlloc) - int64(before.HeapAlloc)
	perPartition := jobs.DefaultMaxBuffered*recordBytes + kafka.DefaultFetchMaxBytes
	bound := int64(4*partitions*perPartition + 32<<20)
	t.Logf("live heap grew %.1f MB (heap from the OS %.1f MB) holding %d partitions × %d jobs of %d bytes in one-record batches; bound %.1f MB (broker=%s)",
		float64(grew)/(1<<20), float64(int64(during.HeapSys)-int64(before.HeapSys))/(1<<20),
		partitions, jobs.DefaultMaxBuffered, recordBytes, float64(bound)/(1<<20), env.Name)
	if grew > bound {
		t.Errorf("the live heap grew %.1f MB, over the %.1f MB that %d partitions × (MaxBuffered %d × %d bytes + FetchMaxBytes %d) × 4 + 32 MB allow",
			float64(grew)/(1<<20), float64(bound)/(1<<20), partitions, jobs.DefaultMaxBuffered, recordBytes, kafka.DefaultFetchMaxBytes)
	}
}
