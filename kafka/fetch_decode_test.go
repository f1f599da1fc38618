package kafka

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
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
		recs, end, err := decodeBatches(nil, "t", 0, 10, log)
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
		recs, end, err := decodeBatches(nil, "t", 0, 12, log)
		if err != nil || end != 15 || len(recs) != 2 || recs[0].Offset != 12 {
			t.Fatalf("got %v, end %d, err %v", recs, end, err)
		}
	})
	t.Run("only a marker left", func(t *testing.T) {
		recs, end, err := decodeBatches(nil, "t", 0, 13, log[:len(log)-len(appendBatch(nil, 14, 0, 2000, testRecord{key: []byte("k"), value: []byte("d"), headers: [][2][]byte{{[]byte("h"), []byte("v")}, {[]byte("n"), nil}}}))])
		if err != nil || end != 14 || len(recs) != 0 {
			t.Fatalf("got %d records, end %d, err %v; want none, end 14", len(recs), end, err)
		}
	})
	t.Run("a batch cut short by the response's size", func(t *testing.T) {
		recs, end, err := decodeBatches(nil, "t", 0, 10, log[:len(log)-3])
		if err != nil || end != 14 || len(recs) != 3 {
			t.Fatalf("got %d records, end %d, err %v; want 3, end 14, no error", len(recs), end, err)
		}
	})
	t.Run("a corrupt batch", func(t *testing.T) {
		bad := append([]byte(nil), log...)
		bad[len(bad)-1] ^= 0xff
		recs, end, err := decodeBatches(nil, "t", 0, 10, bad)
		if err == nil || len(recs) != 3 || end != 14 {
			t.Fatalf("got %d records, end %d, err %v; want the 3 before it, end 14, and an error", len(recs), end, err)
		}
	})
	t.Run("message format v1", func(t *testing.T) {
		old := append([]byte(nil), log...)
		old[16] = 1
		if _, _, err := decodeBatches(nil, "t", 0, 10, old); !errors.Is(err, errLegacyBatch) {
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
		recs, end, _ := decodeBatches(nil, "t", 0, from, b)
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
