package kafkatest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ordo-go/ordo/kafka"
)

// TxnWriter writes records to one partition of a topic as a transactional
// producer of another service (a Java one, say) does: plain batches, and
// batches in transactions that it commits or aborts, each transaction
// under a transactional id of its own. Its batches are encoded with
// franz-go's kmsg, independently of ordo's own encoder, unless Encode says
// otherwise.
type TxnWriter struct {
	// Encode encodes msgs as one uncompressed record batch of producer
	// pid (-1: none) at epoch and base sequence seq; transactional sets
	// the batch's transactional bit. Package kafka's tests set it to
	// ordo's own encoder, so that the broker checks what it writes.
	Encode func(pid int64, epoch int16, seq int32, transactional bool, msgs []kafka.Message) []byte

	client    *kafkago.Client
	topic     string
	partition int
	prefix    string
}

// NewTxnWriter returns a writer to topic/partition.
func (e *Env) NewTxnWriter(t testing.TB, topic string, partition int) *TxnWriter {
	return &TxnWriter{
		client: &kafkago.Client{Addr: kafkago.TCP(e.Brokers...), Timeout: 30 * time.Second},
		topic:  topic, partition: partition, prefix: UniqueName(t, "txn"), Encode: txnBatch,
	}
}

// Txn is an open transaction of a TxnWriter.
type Txn struct {
	w     *TxnWriter
	id    string
	pid   int64
	epoch int16
	seq   int32
	added bool
}

// Plain writes msgs as one batch outside any transaction and returns the
// offset of its first record.
func (w *TxnWriter) Plain(ctx context.Context, t testing.TB, msgs ...kafka.Message) int64 {
	t.Helper()
	return w.produce(ctx, t, "", w.Encode(-1, -1, -1, false, msgs))
}

// Begin starts a transaction.
func (w *TxnWriter) Begin(ctx context.Context, t testing.TB, name string) *Txn {
	t.Helper()
	id := w.prefix + "-" + name
	var resp *kafkago.InitProducerIDResponse
	var err error
	// A broker's first transaction creates its transaction log: until it
	// is loaded, the coordinator answers that it is not one yet.
	WaitFor(t, 30*time.Second, "the transaction coordinator of "+id, func() bool {
		resp, err = w.client.InitProducerID(ctx, &kafkago.InitProducerIDRequest{TransactionalID: id, TransactionTimeoutMs: 60_000, ProducerID: -1, ProducerEpoch: -1})
		if err == nil {
			err = resp.Error
		}
		return !errors.Is(err, kafkago.NotCoordinatorForGroup) && !errors.Is(err, kafkago.GroupCoordinatorNotAvailable) && !errors.Is(err, kafkago.GroupLoadInProgress)
	})
	if err != nil {
		t.Fatalf("init producer id %q: %v", id, err)
	}
	return &Txn{w: w, id: id, pid: int64(resp.Producer.ProducerID), epoch: int16(resp.Producer.ProducerEpoch)}
}

// Write writes msgs as one batch of the transaction and returns the offset
// of its first record.
func (x *Txn) Write(ctx context.Context, t testing.TB, msgs ...kafka.Message) int64 {
	t.Helper()
	if !x.added {
		resp, err := x.w.client.AddPartitionsToTxn(ctx, &kafkago.AddPartitionsToTxnRequest{
			TransactionalID: x.id, ProducerID: int(x.pid), ProducerEpoch: int(x.epoch),
			Topics: map[string][]kafkago.AddPartitionToTxn{x.w.topic: {{Partition: x.w.partition}}},
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
	at := x.w.produce(ctx, t, x.id, x.w.Encode(x.pid, x.epoch, x.seq, true, msgs))
	x.seq += int32(len(msgs))
	return at
}

// End commits or aborts the transaction.
func (x *Txn) End(ctx context.Context, t testing.TB, commit bool) {
	t.Helper()
	resp, err := x.w.client.EndTxn(ctx, &kafkago.EndTxnRequest{TransactionalID: x.id, ProducerID: int(x.pid), ProducerEpoch: int(x.epoch), Committed: commit})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("end transaction %q (commit %v): %v", x.id, commit, err)
	}
}

func (w *TxnWriter) produce(ctx context.Context, t testing.TB, txnID string, b []byte) int64 {
	t.Helper()
	// kafka-go writes a raw record set as it is: its size first, then the batch.
	b = append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
	resp, err := w.client.RawProduce(ctx, &kafkago.RawProduceRequest{
		Topic: w.topic, Partition: w.partition, RequiredAcks: kafkago.RequireAll, TransactionalID: txnID,
		RawRecords: protocol.RawRecordSet{Reader: bytes.NewReader(b)},
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("produce to %s/%d: %v", w.topic, w.partition, err)
	}
	return resp.BaseOffset
}

// txnBatch encodes msgs as one uncompressed record batch.
func txnBatch(pid int64, epoch int16, seq int32, transactional bool, msgs []kafka.Message) []byte {
	var records []byte
	for i, m := range msgs {
		r := kmsg.Record{OffsetDelta: int32(i), Key: m.Key, Value: m.Value}
		for _, h := range m.Headers {
			r.Headers = append(r.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the size of a record after its size's varint (0: one byte)
		records = r.AppendTo(records)
	}
	now := time.Now().UnixMilli()
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, LastOffsetDelta: int32(len(msgs) - 1),
		FirstTimestamp: now, MaxTimestamp: now, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq,
		NumRecords: int32(len(msgs)), Records: records,
	}
	if transactional {
		rb.Attributes = 0x10
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
