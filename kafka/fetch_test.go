package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// Every record a producer wrote comes back as it was written, whatever the
// producer's compression and batch shape, also when reading starts inside
// a batch: offsets, keys (null and empty apart), values, headers, times.
func TestFetchReturnsRecordsAsWrittenForEveryCodec(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	for _, codec := range []compress.Compression{compress.None, compress.Gzip, compress.Snappy, compress.Lz4, compress.Zstd} {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			topic := env.Topic(t, 1)
			w := &kafkago.Writer{
				Addr: kafkago.TCP(env.Brokers...), Topic: topic, Compression: kafkago.Compression(codec),
				BatchSize: 25, BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireAll,
			}
			defer w.Close()
			at := time.UnixMilli(time.Now().UnixMilli())
			var want []kafkago.Message
			for i := range 100 {
				m := kafkago.Message{Value: []byte(strings.Repeat(fmt.Sprint(i), 1+i%7)), Time: at.Add(time.Duration(i) * time.Millisecond)}
				switch i % 4 {
				case 0:
					m.Key = []byte(fmt.Sprintf("key-%d", i))
				case 1:
					m.Key = []byte{} // empty, not null
				case 2:
					m.Headers = []kafkago.Header{{Key: "h1", Value: []byte("v" + fmt.Sprint(i))}, {Key: "h2"}}
				}
				if i == 50 {
					m.Value = nil
				}
				want = append(want, m)
			}
			if err := w.WriteMessages(ctx, want...); err != nil {
				t.Fatal(err)
			}
			for _, start := range []int64{0, 7, 61} {
				got := readPartition(ctx, t, env, topic, start, len(want))
				for i, r := range got {
					m := want[int(start)+i]
					if r.Offset != start+int64(i) {
						t.Fatalf("from %d: record %d has offset %d", start, i, r.Offset)
					}
					if !bytes.Equal(r.Key, m.Key) || (r.Key == nil) != (m.Key == nil) {
						t.Fatalf("offset %d: key %q (nil %v), want %q (nil %v)", r.Offset, r.Key, r.Key == nil, m.Key, m.Key == nil)
					}
					if !bytes.Equal(r.Value, m.Value) || (r.Value == nil) != (m.Value == nil) {
						t.Fatalf("offset %d: value %q, want %q", r.Offset, r.Value, m.Value)
					}
					if !r.Time.Equal(m.Time) {
						t.Fatalf("offset %d: time %v, want %v", r.Offset, r.Time, m.Time)
					}
					if len(r.Headers) != len(m.Headers) {
						t.Fatalf("offset %d: headers %v, want %v", r.Offset, r.Headers, m.Headers)
					}
					for j, h := range m.Headers {
						if r.Headers[j].Key != h.Key || !bytes.Equal(r.Headers[j].Value, h.Value) {
							t.Fatalf("offset %d: header %d is %v, want %v", r.Offset, j, r.Headers[j], h)
						}
					}
				}
			}
		})
	}
}

// readPartition reads partition 0 of topic from start until it holds end
// records.
func readPartition(ctx context.Context, t *testing.T, env *kafkatest.Env, topic string, start int64, end int) []kafka.Record {
	t.Helper()
	r, err := kafka.NewPartitionReader(kafka.ReaderConfig{Brokers: env.Brokers, Logger: slog.New(slog.DiscardHandler)}, topic, 0, start)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []kafka.Record
	for next := start; next < int64(end); {
		var err error
		if got, next, err = r.Fetch(ctx, got, 1000); err != nil {
			t.Fatalf("fetch from %d: %v", next, err)
		}
	}
	if len(got) != end-int(start) {
		t.Fatalf("read %d records from %d, want %d", len(got), start, end-int(start))
	}
	return got
}

// A fetch response of one-record batches (jobs enqueued one per call) costs
// about its own size to read, not a kafka-go decoding page of 64 KiB per
// batch: one fetch of 1 MiB of them allocated 262 MB (embedded broker) and
// 255 MB (Kafka) through kafka-go's decoder. The bound counts the embedded
// broker's own allocations, which share the process: 24 × FetchMaxBytes.
//
// Not parallel: it counts the process's allocations.
func TestFetchOfOneRecordBatchesAllocatesInProportionToTheResponse(t *testing.T) {
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, BatchSize: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const records = 5000
	msgs := make([]kafka.Message, records)
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: topic, Key: fmt.Appendf(nil, "key-%d", i), Value: bytes.Repeat([]byte{'v'}, 200)}
	}
	if _, err := p.ProduceSync(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	r, err := kafka.NewPartitionReader(kafka.ReaderConfig{Brokers: env.Brokers, Logger: slog.New(slog.DiscardHandler)}, topic, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Two collections empty the sync.Pools, whose buffers a fetch reuses:
	// what the fetch needs is then allocated, and counted.
	runtime.GC()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// The fetch also connects and reads metadata: a few kilobytes.
	got, _, err := r.Fetch(ctx, nil, records)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	var held int
	for _, r := range got {
		held += len(r.Key) + len(r.Value)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	const bound = 24 * kafka.DefaultFetchMaxBytes
	t.Logf("one fetch of %d one-record batches (%d bytes of keys and values) allocated %.1f MB; bound %.1f MB (broker=%s)",
		len(got), held, float64(allocated)/1e6, float64(bound)/1e6, env.Name)
	if len(got) < 1000 {
		t.Fatalf("the fetch returned %d records; want a response of over 1000 batches to measure", len(got))
	}
	if allocated > bound {
		t.Fatalf("one fetch allocated %.1f MB for %d bytes of records; bound %.1f MB", float64(allocated)/1e6, held, float64(bound)/1e6)
	}
}
