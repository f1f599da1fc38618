package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

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

	w.Plain(ctx, t, kv("a", "a-1")...)
	committed := w.Begin(ctx, t, "committed")
	committed.Write(ctx, t, kv("b", "b-1", "a", "a-2")...)
	aborted := w.Begin(ctx, t, "aborted")
	aborted.Write(ctx, t, kv("a", "a-x1", "b", "b-x1")...)
	w.Plain(ctx, t, kv("b", "b-2")...)
	committed.Write(ctx, t, kv("a", "a-3")...)
	aborted.Write(ctx, t, kv("b", "b-x2")...)
	aborted.End(ctx, t, false)
	committed.End(ctx, t, true)
	w.Plain(ctx, t, kv("a", "a-4")...)
	open := w.Begin(ctx, t, "open")
	// Kafka writes a transaction's marker after EndTxn returns: where
	// markers land is the broker's, but the open transaction's first
	// offset is the last stable offset once the others ended.
	stable := open.Write(ctx, t, kv("c", "c-open")...)
	defer open.End(context.Background(), t, false)

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
	w.Plain(ctx, t, kv("a", "a-1", "b", "b-1")...)
	open := w.Begin(ctx, t, "open")
	stable := open.Write(ctx, t, kv("c", "c-open")...)
	defer open.End(context.Background(), t, false)

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

// newTxnWriter writes to partition 0 of topic, its batches encoded by
// ordo's own encoder, so that the broker checks them too.
func newTxnWriter(t *testing.T, env *kafkatest.Env, topic string) *kafkatest.TxnWriter {
	w := env.NewTxnWriter(t, topic, 0)
	w.Encode = func(pid int64, epoch int16, seq int32, transactional bool, msgs []kafka.Message) []byte {
		recs := make([]kafka.BatchRecord, len(msgs))
		for i, m := range msgs {
			recs[i] = kafka.BatchRecord{Key: m.Key, Value: m.Value, Headers: m.Headers}
		}
		return kafka.AppendRecordBatch(nil, pid, epoch, seq, transactional, recs...)
	}
	return w
}

// kv gives key/value pairs as messages.
func kv(pairs ...string) []kafka.Message {
	var out []kafka.Message
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, kafka.Message{Key: []byte(pairs[i]), Value: []byte(pairs[i+1])})
	}
	return out
}
