package kafka

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A batch ordo encodes reads back, through ordo's own decoder (which checks
// its CRC-32C) and through franz-go's, as it was written: records, times,
// producer id, epoch, sequence and the transactional flag.
func TestRecordBatchRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_000)
	records := []batchRecord{
		{Key: []byte("k1"), Value: []byte("v1"), Time: at},
		{Key: nil, Value: []byte(strings.Repeat("long", 100)), Headers: []Header{{Key: "ordo-kind", Value: []byte("email")}, {Key: "n"}}, Time: at.Add(5 * time.Millisecond)},
		{Key: []byte{}, Value: nil, Time: at.Add(2 * time.Millisecond)},
	}
	for _, txn := range []bool{false, true} {
		b := appendRecordBatch([]byte("prefix"), batchProducer{id: 4711, epoch: 3, baseSequence: 42, transactional: txn}, records)
		b = b[len("prefix"):]

		var d batchDecoder
		got, end, rest, count, err := d.decode(nil, "t", 0, 0, b)
		if err != nil || end != 3 || len(rest) != 0 || count != 3 || len(got) != 3 {
			t.Fatalf("transactional %v: decoded %d records, end %d, %d bytes left, count %d, err %v", txn, len(got), end, len(rest), count, err)
		}
		for i, r := range got {
			w := records[i]
			if r.Offset != int64(i) || !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) ||
				!bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) || !r.Time.Equal(w.Time) || len(r.Headers) != len(w.Headers) {
				t.Fatalf("record %d: got %+v, want %+v", i, r, w)
			}
			for j, h := range w.Headers {
				if r.Headers[j].Key != h.Key || !bytes.Equal(r.Headers[j].Value, h.Value) || (r.Headers[j].Value == nil) != (h.Value == nil) {
					t.Fatalf("record %d header %d: got %+v, want %+v", i, j, r.Headers[j], h)
				}
			}
		}

		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		wantAttrs := int16(0)
		if txn {
			wantAttrs = attrTransactional
		}
		if rb.Magic != 2 || rb.ProducerID != 4711 || rb.ProducerEpoch != 3 || rb.FirstSequence != 42 || rb.Attributes != wantAttrs ||
			rb.LastOffsetDelta != 2 || rb.FirstTimestamp != at.UnixMilli() || rb.MaxTimestamp != at.UnixMilli()+5 || rb.NumRecords != 3 {
			t.Fatalf("franz-go read the batch header as %+v", rb)
		}

		bad := bytes.Clone(b)
		bad[len(bad)-1] ^= 1
		if _, _, _, _, err := d.decode(nil, "t", 0, 0, bad); err == nil || !strings.Contains(err.Error(), "CRC mismatch") {
			t.Fatalf("a changed byte decoded with err %v, want a CRC mismatch", err)
		}
	}
}
