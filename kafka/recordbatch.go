package kafka

import (
	"encoding/binary"
	"hash/crc32"
	"time"
)

// ordo writes its own record batches so that they can carry what
// kafka-go's producer leaves out: a producer id, epoch and sequence (the
// broker drops a retried batch it already has) and the transactional flag.

// batchRecord is one record of a batch ordo encodes.
type batchRecord struct {
	Key, Value []byte // nil: null
	Headers    []Header
	Time       time.Time // zero: the time of encoding
}

// batchProducer is who writes a batch: the producer id and epoch the
// broker gave (InitProducerID), the sequence of the batch's first record
// on its partition, and whether the batch belongs to a transaction. A
// producer id of -1 writes a batch neither idempotent nor transactional.
type batchProducer struct {
	id            int64
	epoch         int16
	baseSequence  int32
	transactional bool
}

// Record batch v2 attributes ordo reads or writes.
const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

// appendRecordBatch appends records as one uncompressed record batch
// (magic 2) with base offset 0, which the broker replaces with the
// partition's next offset.
func appendRecordBatch(dst []byte, p batchProducer, records []batchRecord) []byte {
	now := time.Now()
	first, maxTS := int64(-1), int64(-1)
	for i := range records {
		ts := recordTime(records[i].Time, now)
		if first < 0 {
			first = ts
		}
		maxTS = max(maxTS, ts)
	}
	var attrs uint16
	if p.transactional {
		attrs |= attrTransactional
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, 0)          // base offset
	dst = binary.BigEndian.AppendUint32(dst, 0)          // batch length, below
	dst = binary.BigEndian.AppendUint32(dst, ^uint32(0)) // partition leader epoch -1: the broker's
	dst = append(dst, 2)                                 // magic
	dst = binary.BigEndian.AppendUint32(dst, 0)          // CRC, below
	dst = binary.BigEndian.AppendUint16(dst, attrs)
	dst = binary.BigEndian.AppendUint32(dst, uint32(max(len(records)-1, 0))) // last offset delta
	dst = binary.BigEndian.AppendUint64(dst, uint64(first))
	dst = binary.BigEndian.AppendUint64(dst, uint64(maxTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(p.id))
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.epoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(p.baseSequence))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(records)))
	for i := range records {
		dst = appendBatchRecord(dst, &records[i], int64(i), recordTime(records[i].Time, now)-first)
	}
	binary.BigEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-12))
	binary.BigEndian.PutUint32(dst[start+17:], crc32.Checksum(dst[start+21:], castagnoli))
	return dst
}

func recordTime(t, now time.Time) int64 {
	if t.IsZero() {
		t = now
	}
	return t.UnixMilli()
}

// appendBatchRecord appends one record, its size first; the size is known
// only once it is written, so the record is written after a one-byte
// guess and moved when the size's varint is longer.
func appendBatchRecord(dst []byte, r *batchRecord, offsetDelta, timestampDelta int64) []byte {
	at := len(dst)
	dst = append(dst, 0) // size, below
	dst = append(dst, 0) // attributes: unused since magic 2
	dst = binary.AppendVarint(dst, timestampDelta)
	dst = binary.AppendVarint(dst, offsetDelta)
	dst = appendVarintBytes(dst, r.Key)
	dst = appendVarintBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = appendVarintBytes(dst, []byte(h.Key))
		dst = appendVarintBytes(dst, h.Value)
	}
	size := int64(len(dst) - at - 1)
	var v [binary.MaxVarintLen64]byte
	n := binary.PutVarint(v[:], size)
	if n > 1 {
		dst = append(dst, v[:n-1]...) // room for the longer size
		copy(dst[at+n:], dst[at+1:len(dst)-(n-1)])
	}
	copy(dst[at:], v[:n])
	return dst
}

// appendVarintBytes appends a length-prefixed field; nil is null (-1).
func appendVarintBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}
