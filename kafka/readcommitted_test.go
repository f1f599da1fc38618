package kafka_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// Records written in a transaction that aborted never reach a reader, nor
// do transaction markers: a claim hands out the plain records and those of
// committed transactions, in offset order, even when an aborted
// transaction's batches sit between them on the partition; Admin.Read
// too.
func TestReadCommittedSkipsAbortedTransactionsAndMarkers(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := env.Topic(t, 1)
	w := newTxnWriter(t, env, topic)

	w.plain(ctx, t, "a", "a-1")
	committed := w.begin(ctx, t, "committed")
	committed.write(ctx, t, "b", "b-1", "a", "a-2")
	aborted := w.begin(ctx, t, "aborted")
	aborted.write(ctx, t, "a", "a-x1", "b", "b-x1")
	w.plain(ctx, t, "b", "b-2")
	committed.write(ctx, t, "a", "a-3")
	aborted.write(ctx, t, "b", "b-x2")
	aborted.end(ctx, t, false)
	committed.end(ctx, t, true)
	w.plain(ctx, t, "a", "a-4")
	open := w.begin(ctx, t, "open")
	// Kafka writes a transaction's marker after EndTxn returns: where
	// markers land is the broker's, but the open transaction's first
	// offset is the last stable offset once the others ended.
	stable := open.write(ctx, t, "c", "c-open")
	defer open.end(context.Background(), t, false)

	r, err := kafka.NewPartitionReader(kafka.ReaderConfig{Brokers: env.Brokers, Logger: slog.New(slog.DiscardHandler)}, topic, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []kafka.Record
	for next := int64(0); next < stable; {
		if got, next, err = r.Fetch(ctx, got, 100); err != nil {
			t.Fatalf("fetch from %d: %v", next, err)
		}
	}
	want := []string{"a/a-1", "b/b-1", "a/a-2", "b/b-2", "a/a-3", "a/a-4"}
	if s := describe(got); fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("the claim handed out %v, want %v (the committed and plain records, in offset order, no marker, no aborted record)", s, want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Offset <= got[i-1].Offset {
			t.Fatalf("record %d at offset %d after one at %d", i, got[i].Offset, got[i-1].Offset)
		}
	}
	read, err := env.Admin.Read(ctx, topic, 0, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if s := describe(read); fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("Admin.Read returned %v, want %v", s, want)
	}
	if read, err = env.Admin.Read(ctx, topic, 0, kafkago.FirstOffset, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s := describe(read); fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("Admin.Read from kafka-go's FirstOffset returned %v, want %v", s, want)
	}
}

// While a transaction is open, a claim's HighWatermark (lag, and the end a
// schedule dispatcher waits for, as of its assignment) and Admin.EndOffsets
// (status lag, tools that read a topic to its end) are the last stable
// offset, where the open transaction starts, not the high watermark past
// it: a reader waiting for the high watermark would wait as long as the
// transaction stays open, for records it cannot read.
func TestClaimHighWatermarkIsTheLastStableOffset(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := env.Topic(t, 1)
	w := newTxnWriter(t, env, topic)
	w.plain(ctx, t, "a", "a-1", "b", "b-1")
	open := w.begin(ctx, t, "open")
	stable := open.write(ctx, t, "c", "c-open")
	defer open.end(context.Background(), t, false)

	r, err := kafka.NewPartitionReader(kafka.ReaderConfig{Brokers: env.Brokers, Logger: slog.New(slog.DiscardHandler)}, topic, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []kafka.Record
	for len(got) < 2 {
		if got, _, err = r.Fetch(ctx, got, 100); err != nil {
			t.Fatal(err)
		}
	}
	if hw := r.HighWatermark(); hw != stable {
		t.Fatalf("with a transaction open at offset %d, the claim's HighWatermark is %d, want the last stable offset %d (the high watermark is %d)", stable, hw, stable, stable+1)
	}
	// The end offsets that status and tools read up to, and count lag
	// from, are the same.
	end, err := env.Admin.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if end[0] != stable {
		t.Fatalf("with a transaction open at offset %d, Admin.EndOffsets is %d, want the last stable offset %d", stable, end[0], stable)
	}
}

// describe gives each record as key/value.
func describe(recs []kafka.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s/%s", r.Key, r.Value))
	}
	return out
}

// txnWriter writes record batches to partition 0 of a topic with kafka-go's
// Client: plain ones, and ones in transactions, each transaction under a
// transactional id (so a producer id) of its own, as independent
// producers write them.
type txnWriter struct {
	client *kafkago.Client
	topic  string
	prefix string
}

func newTxnWriter(t *testing.T, env *kafkatest.Env, topic string) *txnWriter {
	return &txnWriter{
		client: &kafkago.Client{Addr: kafkago.TCP(env.Brokers...), Timeout: 30 * time.Second},
		topic:  topic,
		prefix: kafkatest.UniqueName(t, "txn"),
	}
}

// batch encodes keys and values given in pairs.
func batch(producerID int64, epoch int16, seq int32, txn bool, kv ...string) []byte {
	var recs []kafka.BatchRecord
	for i := 0; i < len(kv); i += 2 {
		recs = append(recs, kafka.BatchRecord{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return kafka.AppendRecordBatch(nil, producerID, epoch, seq, txn, recs...)
}

// produce writes one batch and returns its first record's offset.
func (w *txnWriter) produce(ctx context.Context, t *testing.T, txnID string, b []byte) int64 {
	t.Helper()
	// kafka-go writes a raw record set as it is: its size first, then the batch.
	b = append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	resp, err := w.client.RawProduce(ctx, &kafkago.RawProduceRequest{
		Topic: w.topic, Partition: 0, RequiredAcks: kafkago.RequireAll, TransactionalID: txnID,
		RawRecords: protocol.RawRecordSet{Reader: bytes.NewReader(b)},
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	return resp.BaseOffset
}

// plain writes key/value pairs outside any transaction.
func (w *txnWriter) plain(ctx context.Context, t *testing.T, kv ...string) {
	t.Helper()
	w.produce(ctx, t, "", batch(-1, -1, -1, false, kv...))
}

type transaction struct {
	w     *txnWriter
	id    string
	pid   int64
	epoch int16
	seq   int32
	added bool
}

// begin starts a transaction under a transactional id of its own.
func (w *txnWriter) begin(ctx context.Context, t *testing.T, name string) *transaction {
	t.Helper()
	id := w.prefix + "-" + name
	var resp *kafkago.InitProducerIDResponse
	var err error
	// A broker's first transaction creates its transaction log: until it
	// is loaded, the coordinator answers that it is not one yet.
	kafkatest.WaitFor(t, 30*time.Second, "the transaction coordinator of "+id, func() bool {
		resp, err = w.client.InitProducerID(ctx, &kafkago.InitProducerIDRequest{TransactionalID: id, TransactionTimeoutMs: 60_000, ProducerID: -1, ProducerEpoch: -1})
		if err == nil {
			err = resp.Error
		}
		return !errors.Is(err, kafkago.NotCoordinatorForGroup) && !errors.Is(err, kafkago.GroupCoordinatorNotAvailable) && !errors.Is(err, kafkago.GroupLoadInProgress)
	})
	if err != nil {
		t.Fatalf("init producer id %q: %v", id, err)
	}
	return &transaction{w: w, id: id, pid: int64(resp.Producer.ProducerID), epoch: int16(resp.Producer.ProducerEpoch)}
}

// write writes key/value pairs as one batch of the transaction and
// returns its first offset.
func (x *transaction) write(ctx context.Context, t *testing.T, kv ...string) int64 {
	t.Helper()
	if !x.added {
		resp, err := x.w.client.AddPartitionsToTxn(ctx, &kafkago.AddPartitionsToTxnRequest{
			TransactionalID: x.id, ProducerID: int(x.pid), ProducerEpoch: int(x.epoch),
			Topics: map[string][]kafkago.AddPartitionToTxn{x.w.topic: {{Partition: 0}}},
		})
		if err == nil {
			for _, p := range resp.Topics[x.w.topic] {
				err = p.Error
			}
		}
		if err != nil {
			t.Fatalf("add partition to transaction %q: %v", x.id, err)
		}
		x.added = true
	}
	at := x.w.produce(ctx, t, x.id, batch(x.pid, x.epoch, x.seq, true, kv...))
	x.seq += int32(len(kv) / 2)
	return at
}

// end commits or aborts the transaction.
func (x *transaction) end(ctx context.Context, t *testing.T, commit bool) {
	t.Helper()
	resp, err := x.w.client.EndTxn(ctx, &kafkago.EndTxnRequest{TransactionalID: x.id, ProducerID: int(x.pid), ProducerEpoch: int(x.epoch), Committed: commit})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Errorf("end transaction %q (commit %v): %v", x.id, commit, err)
	}
}
