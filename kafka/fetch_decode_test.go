package kafka

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// testRecord is a record as a test writes it into a batch.
type testRecord struct {
	offsetDelta int64
	key, value  []byte // nil: null
	headers     [][2][]byte
}

// appendBatch appends a record batch (magic 2, uncompressed) as a broker
// stores it.
func appendBatch(dst []byte, base int64, attrs uint16, firstTS int64, records ...testRecord) []byte {
	var body []byte
	for _, r := range records {
		var rec []byte
		rec = append(rec, 0) // attributes
		rec = binary.AppendVarint(rec, 0)
		rec = binary.AppendVarint(rec, r.offsetDelta)
		rec = appendField(rec, r.key)
		rec = appendField(rec, r.value)
		rec = binary.AppendVarint(rec, int64(len(r.headers)))
		for _, h := range r.headers {
			rec = appendField(rec, h[0])
			rec = appendField(rec, h[1])
		}
		body = binary.AppendVarint(body, int64(len(rec)))
		body = append(body, rec...)
	}
	var lastDelta int64
	if len(records) > 0 {
		lastDelta = records[len(records)-1].offsetDelta
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(base))
	b = binary.BigEndian.AppendUint32(b, 0) // length, below
	b = binary.BigEndian.AppendUint32(b, 0) // partition leader epoch
	b = append(b, 2)
	b = binary.BigEndian.AppendUint32(b, 0) // crc, below
	b = binary.BigEndian.AppendUint16(b, attrs)
	b = binary.BigEndian.AppendUint32(b, uint32(lastDelta))
	b = binary.BigEndian.AppendUint64(b, uint64(firstTS))
	b = binary.BigEndian.AppendUint64(b, uint64(firstTS))
	b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // producer id -1
	b = binary.BigEndian.AppendUint16(b, ^uint16(0))
	b = binary.BigEndian.AppendUint32(b, ^uint32(0))
	b = binary.BigEndian.AppendUint32(b, uint32(len(records)))
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return append(dst, b...)
}

func appendField(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}

func TestDecodeBatches(t *testing.T) {
	one := func(off int64, v string) testRecord { return testRecord{offsetDelta: off, value: []byte(v)} }
	var log []byte
	log = appendBatch(log, 10, 0, 1000, one(0, "a"), one(1, "b"), one(2, "c"))
	log = appendBatch(log, 13, 0x20|0x10, 1000, testRecord{key: []byte{0, 0, 0, 0}, value: []byte{0, 0, 0, 0, 0, 0}}) // a commit marker
	log = appendBatch(log, 14, 0, 2000, testRecord{key: []byte("k"), value: []byte("d"), headers: [][2][]byte{{[]byte("h"), []byte("v")}, {[]byte("n"), nil}}})

	t.Run("every record, past the marker", func(t *testing.T) {
		recs, end, err := decodeBatches(nil, "t", 0, 10, log, nil)
		if err != nil || end != 15 || len(recs) != 4 {
			t.Fatalf("got %d records, end %d, err %v; want 4, 15, nil", len(recs), end, err)
		}
		if string(recs[3].Value) != "d" || recs[3].Offset != 14 || string(recs[3].Key) != "k" || recs[3].Time.UnixMilli() != 2000 {
			t.Fatalf("last record %+v", recs[3])
		}
		if h := recs[3].Headers; len(h) != 2 || h[0].Key != "h" || string(h[0].Value) != "v" || h[1].Key != "n" || h[1].Value != nil {
			t.Fatalf("headers %+v", h)
		}
		if recs[0].Key != nil {
			t.Fatalf("null key read as %q", recs[0].Key)
		}
	})
	t.Run("from inside a batch", func(t *testing.T) {
		recs, end, err := decodeBatches(nil, "t", 0, 12, log, nil)
		if err != nil || end != 15 || len(recs) != 2 || recs[0].Offset != 12 {
			t.Fatalf("got %v, end %d, err %v", recs, end, err)
		}
	})
	t.Run("only a marker left", func(t *testing.T) {
		recs, end, err := decodeBatches(nil, "t", 0, 13, log[:len(log)-len(appendBatch(nil, 14, 0, 2000, testRecord{key: []byte("k"), value: []byte("d"), headers: [][2][]byte{{[]byte("h"), []byte("v")}, {[]byte("n"), nil}}}))], nil)
		if err != nil || end != 14 || len(recs) != 0 {
			t.Fatalf("got %d records, end %d, err %v; want none, end 14", len(recs), end, err)
		}
	})
	t.Run("a batch cut short by the response's size", func(t *testing.T) {
		recs, end, err := decodeBatches(nil, "t", 0, 10, log[:len(log)-3], nil)
		if err != nil || end != 14 || len(recs) != 3 {
			t.Fatalf("got %d records, end %d, err %v; want 3, end 14, no error", len(recs), end, err)
		}
	})
	t.Run("a corrupt batch", func(t *testing.T) {
		bad := append([]byte(nil), log...)
		bad[len(bad)-1] ^= 0xff
		recs, end, err := decodeBatches(nil, "t", 0, 10, bad, nil)
		if err == nil || len(recs) != 3 || end != 14 {
			t.Fatalf("got %d records, end %d, err %v; want the 3 before it, end 14, and an error", len(recs), end, err)
		}
	})
	t.Run("message format v1", func(t *testing.T) {
		old := append([]byte(nil), log...)
		old[16] = 1
		if _, _, err := decodeBatches(nil, "t", 0, 10, old, nil); !errors.Is(err, errLegacyBatch) {
			t.Fatalf("err %v; want errLegacyBatch", err)
		}
	})
}

// The decoder reads what a broker sends: it never panics and never hands
// out a record outside the bytes it was given.
func FuzzDecodeBatches(f *testing.F) {
	f.Add(appendBatch(nil, 0, 0, 0, testRecord{key: []byte("k"), value: []byte("v"), headers: [][2][]byte{{[]byte("h"), nil}}}), int64(0))
	f.Add(appendBatch(appendBatch(nil, 5, 0, 0, testRecord{value: []byte("v")}), 6, 0x20, 0, testRecord{}), int64(3))
	f.Fuzz(func(t *testing.T, b []byte, from int64) {
		recs, end, _ := decodeBatches(nil, "t", 0, from, b, nil)
		if end < from {
			t.Fatalf("end %d before from %d", end, from)
		}
		for _, r := range recs {
			if r.Offset < from {
				t.Fatalf("record at %d before from %d", r.Offset, from)
			}
			if len(r.Key)+len(r.Value) > len(b) {
				t.Fatalf("a record of %d bytes from %d bytes", len(r.Key)+len(r.Value), len(b))
			}
		}
	})
}

// ordo's Fetch request and response codecs against franz-go's, at every
// version ordo speaks: what ordo writes franz-go reads as meant, and what a
// broker writes (here franz-go) ordo reads.
func TestFetchCodecsMatchTheProtocol(t *testing.T) {
	batches := appendBatch(nil, 42, 0, 1000, testRecord{value: []byte("v")})
	for v := int16(minFetchVersion); v <= maxFetchVersion; v++ {
		f := &rawFetch{topic: "jobs", partition: 3, offset: 42, maxBytes: 1 << 20, maxWait: 250 * time.Millisecond, version: v}
		req := kmsg.NewFetchRequest()
		req.Version = v
		if err := req.ReadFrom(f.appendBody(nil)); err != nil {
			t.Fatalf("v%d: franz-go cannot read ordo's request: %v", v, err)
		}
		p := req.Topics[0].Partitions[0]
		if req.ReplicaID != -1 || req.MaxWaitMillis != 250 || req.MaxBytes != 1<<20 || len(req.Topics) != 1 || req.Topics[0].Topic != "jobs" ||
			len(req.Topics[0].Partitions) != 1 || p.Partition != 3 || p.FetchOffset != 42 || p.PartitionMaxBytes != 1<<20 {
			t.Fatalf("v%d: franz-go read %+v", v, req)
		}
		if req.IsolationLevel != 1 {
			t.Fatalf("v%d: isolation level %d, want 1 (read committed)", v, req.IsolationLevel)
		}
		if v >= 7 && req.SessionEpoch != -1 {
			t.Fatalf("v%d: session epoch %d, want -1 (no fetch session)", v, req.SessionEpoch)
		}

		resp := kmsg.NewFetchResponse()
		resp.Version = v
		other := kmsg.NewFetchResponseTopic()
		other.Topic = "other"
		op := kmsg.NewFetchResponseTopicPartition()
		op.Partition, op.ErrorCode = 3, 6
		other.Partitions = append(other.Partitions, op)
		mine := kmsg.NewFetchResponseTopic()
		mine.Topic = "jobs"
		mp := kmsg.NewFetchResponseTopicPartition()
		mp.Partition, mp.HighWatermark, mp.LastStableOffset, mp.LogStartOffset, mp.RecordBatches = 3, 50, 45, 7, batches
		mp.AbortedTransactions = append(mp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: 1, FirstOffset: 2})
		mine.Partitions = append(mine.Partitions, mp)
		resp.Topics = append(resp.Topics, other, mine)
		got, err := decodeFetchResponse(resp.AppendTo(nil), v, "jobs", 3)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		wantStart := int64(7)
		if v < 5 {
			wantStart = -1
		}
		if got.errorCode != 0 || got.highWatermark != 50 || got.lastStableOffset != 45 || got.logStartOffset != wantStart || !bytes.Equal(got.batches, batches) {
			t.Fatalf("v%d: read error %d, high watermark %d, last stable offset %d, log start %d, %d bytes of batches", v, got.errorCode, got.highWatermark, got.lastStableOffset, got.logStartOffset, len(got.batches))
		}
		if want := []byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}; !bytes.Equal(got.aborted, want) {
			t.Fatalf("v%d: aborted transactions read as %v, want producer 1 from offset 2", v, got.aborted)
		}
	}
}

// The response decoder reads what a broker sends: it never panics, and the
// batches it keeps lie within the response.
func FuzzDecodeFetchResponse(f *testing.F) {
	resp := kmsg.NewFetchResponse()
	resp.Version = 11
	tp := kmsg.NewFetchResponseTopic()
	tp.Topic = "t"
	pp := kmsg.NewFetchResponseTopicPartition()
	pp.RecordBatches = appendBatch(nil, 0, 0, 0, testRecord{value: []byte("v")})
	tp.Partitions = append(tp.Partitions, pp)
	resp.Topics = append(resp.Topics, tp)
	f.Add(resp.AppendTo(nil), int16(11))
	f.Fuzz(func(t *testing.T, b []byte, version int16) {
		got, err := decodeFetchResponse(b, version%12, "t", 0)
		if err == nil && len(got.batches) > len(b) {
			t.Fatalf("%d bytes of batches from %d bytes", len(got.batches), len(b))
		}
	})
}

// producerBatch is a batch of producer at base: transactional or not, or a
// transaction marker (commit or abort) when marker is "commit" or "abort".
func producerBatch(base, producer int64, txn bool, marker string, values ...string) []byte {
	var recs []batchRecord
	for _, v := range values {
		recs = append(recs, batchRecord{Value: []byte(v), Time: time.UnixMilli(1000)})
	}
	if marker != "" {
		key := []byte{0, 0, 0, 0}
		if marker == "commit" {
			key[3] = 1
		}
		recs = []batchRecord{{Key: key, Value: []byte{0, 0, 0, 0, 0, 0}, Time: time.UnixMilli(1000)}}
	}
	b := appendRecordBatch(nil, batchProducer{id: producer, transactional: txn || marker != ""}, recs)
	binary.BigEndian.PutUint64(b, uint64(base))
	if marker != "" {
		binary.BigEndian.PutUint16(b[21:], attrTransactional|attrControl)
		binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], castagnoli))
	}
	return b
}

// The records of aborted transactions are skipped as the Java consumer
// skips them: a producer's transactional batches from its aborted
// transaction's first offset up to its abort marker. Its later
// transactions, its batches outside transactions, other producers'
// batches interleaved with the aborted ones, and the offsets past the
// skipped batches are kept.
func TestDecodeSkipsAbortedTransactions(t *testing.T) {
	var log []byte
	log = append(log, producerBatch(0, 1, true, "", "aborted-0")...)
	log = append(log, producerBatch(1, 2, true, "", "committed-1")...)
	log = append(log, producerBatch(2, -1, false, "", "plain-2")...)
	log = append(log, producerBatch(3, 1, true, "abort")...)
	log = append(log, producerBatch(4, 1, true, "", "committed-4")...)
	log = append(log, producerBatch(5, 2, true, "commit")...)
	log = append(log, producerBatch(6, 3, false, "", "idempotent-6")...)
	log = append(log, producerBatch(7, 3, true, "", "aborted-7", "aborted-8")...)
	log = append(log, producerBatch(9, 1, true, "commit")...)
	log = append(log, producerBatch(10, 3, true, "abort")...)
	log = append(log, producerBatch(11, 3, false, "", "idempotent-11")...)
	// As a broker lists them, in no promised order.
	var aborted []byte
	for _, a := range [][2]int64{{3, 7}, {1, 0}} {
		aborted = binary.BigEndian.AppendUint64(aborted, uint64(a[0]))
		aborted = binary.BigEndian.AppendUint64(aborted, uint64(a[1]))
	}
	recs, end, err := decodeBatches(nil, "t", 0, 0, log, aborted)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s@%d", r.Value, r.Offset))
	}
	want := []string{"committed-1@1", "plain-2@2", "committed-4@4", "idempotent-6@6", "idempotent-11@11"}
	if fmt.Sprint(got) != fmt.Sprint(want) || end != 12 {
		t.Fatalf("decoded %v up to %d, want %v up to 12", got, end, want)
	}
	// Without aborted transactions, every record but the markers is read.
	if recs, _, _ := decodeBatches(nil, "t", 0, 0, log, nil); len(recs) != 8 {
		t.Fatalf("with no aborted transaction, decoded %d records, want 8", len(recs))
	}
}
