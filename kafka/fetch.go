package kafka

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
)

// A claim's fetch goes through kafka-go's transport (connections, TLS,
// SASL, leader routing) but reads the response itself: kafka-go decodes
// every record batch of a response into a 64 KiB page before the first
// record is read, so a 1 MiB response of one-record batches (a job
// enqueued per call) cost 64 MiB or more per partition at the peak. Here
// a response is one buffer of its own size, and each record is copied
// out of it into an allocation of its record's size.

// fetchVersion bounds the Fetch versions ordo speaks: v4 (Kafka 0.11) is
// the first with record batches, v11 the last before flexible versions,
// and the highest kafka-go negotiates.
const (
	minFetchVersion = 4
	maxFetchVersion = 11
)

// maxFetchResponse bounds the size a broker may announce for a fetch
// response, so that a corrupt or hostile length is an error rather than an
// allocation of gigabytes. A broker returns at most FetchMaxBytes, or one
// record batch when the first is larger; batches are bounded by the
// broker's message.max.bytes (1 MiB by default).
const maxFetchResponse = 256 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var correlationIDs atomic.Int32

// rawFetch is one partition's Fetch request. It is a kafka-go message so
// that the transport routes it to the partition's leader over its pooled,
// authenticated connection; RawExchange then writes the request and reads
// the response on that connection.
type rawFetch struct {
	topic     string
	partition int32
	offset    int64
	maxBytes  int32
	maxWait   time.Duration
	version   int16
}

// fetched is a decoded fetch response. buf is the response as read, which
// batches points into; release gives it back once its records are copied.
type fetched struct {
	errorCode      int16
	highWatermark  int64
	logStartOffset int64
	// lastStableOffset is where the partition's first open transaction
	// starts (the high watermark when none is open): a read_committed
	// fetch reads up to it, no further.
	lastStableOffset int64
	// aborted is the response's aborted transactions (producer id and
	// first offset, 8 bytes each) as read: empty unless a transaction in
	// the records returned was aborted.
	aborted []byte
	batches []byte
	buf     *[]byte
}

func (*rawFetch) ApiKey() protocol.ApiKey { return protocol.Fetch }
func (*fetched) ApiKey() protocol.ApiKey  { return protocol.Fetch }

// Broker routes the request to the partition's leader, as kafka-go's own
// fetch does.
func (f *rawFetch) Broker(cluster protocol.Cluster) (protocol.Broker, error) {
	topic, ok := cluster.Topics[f.topic]
	if !ok {
		return protocol.Broker{}, fmt.Errorf("no metadata for topic %q: %w", f.topic, kafkago.UnknownTopicOrPartition)
	}
	p, ok := topic.Partitions[f.partition]
	if !ok {
		return protocol.Broker{}, fmt.Errorf("no metadata for %s/%d: %w", f.topic, f.partition, kafkago.UnknownTopicOrPartition)
	}
	b, ok := cluster.Brokers[p.Leader]
	if !ok {
		return protocol.Broker{}, fmt.Errorf("no leader for %s/%d: %w", f.topic, f.partition, kafkago.LeaderNotAvailable)
	}
	return b, nil
}

// Required is called with the connection's negotiated versions right before
// RawExchange; it keeps the Fetch version to speak.
func (f *rawFetch) Required(versions map[protocol.ApiKey]int16) bool {
	f.version = min(versions[protocol.Fetch], maxFetchVersion)
	return true
}

var errFetchVersion = errors.New("the broker does not support Fetch v4 (Kafka 0.11) or later")

func (f *rawFetch) RawExchange(rw io.ReadWriter) (protocol.Message, error) {
	if f.version < minFetchVersion {
		return nil, fmt.Errorf("%w: it offers v%d", errFetchVersion, f.version)
	}
	id := correlationIDs.Add(1)
	// Request header v1: size, api key, version, correlation id, client id.
	frame := make([]byte, 4, 64+len(f.topic))
	frame = binary.BigEndian.AppendUint16(frame, uint16(protocol.Fetch))
	frame = binary.BigEndian.AppendUint16(frame, uint16(f.version))
	frame = binary.BigEndian.AppendUint32(frame, uint32(id))
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(clientID)))
	frame = append(frame, clientID...)
	frame = f.appendBody(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	if _, err := rw.Write(frame); err != nil {
		return nil, fmt.Errorf("write fetch request: %w", err)
	}

	var head [8]byte
	if _, err := io.ReadFull(rw, head[:]); err != nil {
		return nil, fmt.Errorf("read fetch response: %w", err)
	}
	size := int32(binary.BigEndian.Uint32(head[:4]))
	if got := int32(binary.BigEndian.Uint32(head[4:])); got != id {
		return nil, fmt.Errorf("read fetch response: correlation id %d, want %d", got, id)
	}
	if size < 4 || size > maxFetchResponse {
		return nil, fmt.Errorf("read fetch response: size %d out of range [4, %d]", size, maxFetchResponse)
	}
	buf := getBuffer(int(size - 4))
	if _, err := io.ReadFull(rw, *buf); err != nil {
		putBuffer(buf)
		return nil, fmt.Errorf("read fetch response: %w", err)
	}
	out, err := decodeFetchResponse(*buf, f.version, f.topic, f.partition)
	if err != nil {
		putBuffer(buf)
		return nil, fmt.Errorf("decode fetch response: %w", err)
	}
	out.buf = buf
	return out, nil
}

// fetchPartition sends one partition's Fetch through rt (kafka-go's
// transport: leader routing, pooled and secured connections) and returns
// the response, whose buffer the caller releases once its records are
// copied. A partition-level error comes back as a kafka-go Error.
func fetchPartition(ctx context.Context, rt kafkago.RoundTripper, addr net.Addr, f *rawFetch) (*fetched, error) {
	msg, err := rt.RoundTrip(ctx, addr, f)
	if err != nil {
		return nil, err
	}
	resp := msg.(*fetched)
	if resp.errorCode != 0 {
		resp.release()
		return nil, kafkago.Error(resp.errorCode)
	}
	return resp, nil
}

// appendBody appends the Fetch request (v4 to v11) for one partition.
func (f *rawFetch) appendBody(b []byte) []byte {
	v := f.version
	b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // replica id -1: a consumer
	b = binary.BigEndian.AppendUint32(b, uint32(f.maxWait/time.Millisecond))
	b = binary.BigEndian.AppendUint32(b, 1) // min bytes
	b = binary.BigEndian.AppendUint32(b, uint32(f.maxBytes))
	b = append(b, 1) // isolation level: read committed
	if v >= 7 {
		b = binary.BigEndian.AppendUint32(b, 0)          // session id: none
		b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // session epoch -1: a full fetch
	}
	b = binary.BigEndian.AppendUint32(b, 1) // one topic
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.topic)))
	b = append(b, f.topic...)
	b = binary.BigEndian.AppendUint32(b, 1) // one partition
	b = binary.BigEndian.AppendUint32(b, uint32(f.partition))
	if v >= 9 {
		b = binary.BigEndian.AppendUint32(b, ^uint32(0)) // current leader epoch -1: unchecked
	}
	b = binary.BigEndian.AppendUint64(b, uint64(f.offset))
	if v >= 5 {
		b = binary.BigEndian.AppendUint64(b, ^uint64(0)) // log start offset -1: a consumer
	}
	b = binary.BigEndian.AppendUint32(b, uint32(f.maxBytes))
	if v >= 7 {
		b = binary.BigEndian.AppendUint32(b, 0) // no forgotten topics
	}
	if v >= 11 {
		b = binary.BigEndian.AppendUint16(b, 0) // rack id ""
	}
	return b
}

// decodeFetchResponse reads a Fetch response (v4 to v11) and keeps what
// concerns topic/partition; its record batches point into b.
func decodeFetchResponse(b []byte, version int16, topic string, partition int32) (*fetched, error) {
	r := protoReader{b: b}
	out := &fetched{highWatermark: -1, logStartOffset: -1, lastStableOffset: -1}
	r.int32() // throttle time
	if version >= 7 {
		out.errorCode = r.int16()
		r.int32() // session id
	}
	for range r.count(4) {
		name := r.string()
		for range r.count(4) {
			p := r.int32()
			errorCode, hw, lso := r.int16(), r.int64(), r.int64()
			logStart := int64(-1)
			if version >= 5 {
				logStart = r.int64()
			}
			aborted := r.take(16 * r.count(16))
			if version >= 11 {
				r.int32() // preferred read replica
			}
			batches := r.view()
			if name == topic && p == partition {
				if out.errorCode == 0 {
					out.errorCode = errorCode
				}
				out.highWatermark, out.logStartOffset, out.batches = hw, logStart, batches
				out.lastStableOffset, out.aborted = lso, aborted
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return out, nil
}

// clientID is what ordo's fetches name themselves in the brokers' request
// logs and quotas.
const clientID = "ordo"

func (f *fetched) release() {
	if f.buf != nil {
		putBuffer(f.buf)
		f.buf, f.batches, f.aborted = nil, nil, nil
	}
}

// buffers holds response buffers between fetches: a partition under load
// fetches every few milliseconds, each response about FetchMaxBytes.
var buffers sync.Pool

func getBuffer(n int) *[]byte {
	if b, _ := buffers.Get().(*[]byte); b != nil && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

func putBuffer(b *[]byte) { buffers.Put(b) }

// errLegacyBatch says that a response holds message sets of the formats
// before record batches (magic 0 or 1), which only kafka-go's decoder reads.
var errLegacyBatch = errors.New("message format v0/v1")

// batchHeaderSize is a record batch's header, up to its first record.
const batchHeaderSize = 61

// decodeBatches copies every record at or past from in the record batches
// of one partition's fetch response into dst, each record into one
// allocation of its own, and returns the offset after the last complete
// batch it read (end), so that a fetch that met only control records,
// aborted transactions or compacted gaps still moves on. aborted is the
// response's aborted transactions, whose records it skips. A batch cut
// short by the response's size ends the decoding without error: the next
// fetch starts at it.
func decodeBatches(dst []Record, topic string, partition int, from int64, batches, aborted []byte) (records []Record, end int64, err error) {
	var d batchDecoder
	d.startResponse(aborted)
	end = from
	for len(batches) > 0 {
		if dst, end, batches, _, err = d.decode(dst, topic, partition, end, batches); err != nil {
			return dst, end, err
		}
	}
	return dst, end, nil
}

// batchDecoder decodes record batches one at a time; its scratch record
// is reused for each record.
type batchDecoder struct {
	scratch recordView
	// headerKeys interns header keys: every job carries the same few
	// (ordo-kind, ordo-job-id, a trace context), and a string of its own
	// for each would be two or three allocations per record.
	headerKeys map[string]string
	// body holds a compressed batch's records once decompressed; reused,
	// since its records are copied out before the next batch, so a
	// partition of a compressed topic keeps one decompressed batch.
	body bytes.Buffer
	// aborted[nextAborted:] is the response's aborted transactions the
	// decoding has not reached yet, by first offset; aborting holds the
	// producers inside one of them, up to their abort marker. Both are
	// empty unless the response holds records of aborted transactions.
	aborted     []abortedTxn
	nextAborted int
	aborting    []int64
}

// abortedTxn is a transaction a fetch response says was aborted: the
// transactional batches of producerID from firstOffset up to that
// producer's abort marker are not to be read.
type abortedTxn struct{ producerID, firstOffset int64 }

// startResponse sets the aborted transactions of the response whose
// batches the decoder reads next (as the fetch response lists them: the
// broker lists every one that overlaps the records it returns).
func (d *batchDecoder) startResponse(aborted []byte) {
	d.aborted, d.nextAborted, d.aborting = d.aborted[:0], 0, d.aborting[:0]
	for ; len(aborted) >= 16; aborted = aborted[16:] {
		d.aborted = append(d.aborted, abortedTxn{
			producerID:  int64(binary.BigEndian.Uint64(aborted)),
			firstOffset: int64(binary.BigEndian.Uint64(aborted[8:])),
		})
	}
	if len(d.aborted) > 1 {
		slices.SortFunc(d.aborted, func(a, b abortedTxn) int { return cmp.Compare(a.firstOffset, b.firstOffset) })
	}
}

// inAbortedTxn tells whether batch (its attributes attrs, its last offset
// last) is a transactional batch of an aborted transaction, as the Java
// consumer decides: a producer enters an aborted transaction at the
// transaction's first offset and leaves it at its abort marker.
func (d *batchDecoder) inAbortedTxn(batch []byte, attrs uint16, last int64) bool {
	producer := int64(binary.BigEndian.Uint64(batch[43:]))
	if producer < 0 {
		return false // neither idempotent nor transactional
	}
	for ; d.nextAborted < len(d.aborted) && d.aborted[d.nextAborted].firstOffset <= last; d.nextAborted++ {
		if p := d.aborted[d.nextAborted].producerID; !slices.Contains(d.aborting, p) {
			d.aborting = append(d.aborting, p)
		}
	}
	i := slices.Index(d.aborting, producer)
	switch {
	case i < 0:
		return false
	case attrs&attrControl != 0:
		if isAbortMarker(batch) {
			d.aborting = slices.Delete(d.aborting, i, i+1)
		}
		return false // a marker: skipped as one
	default:
		return attrs&attrTransactional != 0
	}
}

// isAbortMarker tells whether a control batch's record is an abort marker:
// its key is a version and a type, 0 for abort (1 for commit).
func isAbortMarker(batch []byte) bool {
	r := varintReader{b: batch[batchHeaderSize:]}
	r.varint() // record size
	r.skip(1)  // attributes
	r.varint() // timestamp delta
	r.varint() // offset delta
	key, _ := r.bytes()
	return !r.bad && len(key) >= 4 && binary.BigEndian.Uint16(key[2:]) == 0
}

// maxHeaderKeys bounds the keys a decoder interns, so that a producer that
// makes up keys costs an allocation per key, not unbounded memory.
const maxHeaderKeys = 64

func (d *batchDecoder) headerKey(b []byte) string {
	if k, ok := d.headerKeys[string(b)]; ok {
		return k
	}
	k := string(b)
	if len(d.headerKeys) < maxHeaderKeys && len(b) <= 64 {
		if d.headerKeys == nil {
			d.headerKeys = make(map[string]string)
		}
		d.headerKeys[k] = k
	}
	return k
}

// decode copies the records at or past from of the first record batch of
// batches into dst. end is the offset after that batch (from when the
// batch ends before from), rest what follows it, and count the records
// its header announces. A batch cut short by the response's size leaves
// rest empty and end at from.
func (d *batchDecoder) decode(dst []Record, topic string, partition int, from int64, batches []byte) (records []Record, end int64, rest []byte, count int32, err error) {
	if len(batches) < 17 {
		return dst, from, nil, 0, nil
	}
	base := int64(binary.BigEndian.Uint64(batches))
	length := int32(binary.BigEndian.Uint32(batches[8:]))
	if magic := batches[16]; magic != 2 {
		return dst, from, nil, 0, fmt.Errorf("batch at %s/%d@%d: %w (magic %d)", topic, partition, base, errLegacyBatch, magic)
	}
	if length < batchHeaderSize-12 || int(length) > len(batches)-12 {
		return dst, from, nil, 0, nil // cut short by the response's size
	}
	batch, rest := batches[:12+length], batches[12+length:]
	if crc := binary.BigEndian.Uint32(batch[17:]); crc32.Checksum(batch[21:], castagnoli) != crc {
		return dst, from, nil, 0, fmt.Errorf("batch at %s/%d@%d: CRC mismatch", topic, partition, base)
	}
	attrs := binary.BigEndian.Uint16(batch[21:])
	last := base + int64(int32(binary.BigEndian.Uint32(batch[23:])))
	count = int32(binary.BigEndian.Uint32(batch[57:]))
	if last < from {
		return dst, from, rest, count, nil // wholly before from: a compressed batch the fetch started inside
	}
	// Once every aborted transaction of the response was passed and left,
	// the rest of its batches are asked nothing.
	if (d.nextAborted < len(d.aborted) || len(d.aborting) > 0) && d.inAbortedTxn(batch, attrs, last) {
		return dst, last + 1, rest, count, nil // written in a transaction that aborted
	}
	if attrs&attrControl != 0 {
		return dst, last + 1, rest, count, nil // a transaction marker: no job
	}
	first := int64(binary.BigEndian.Uint64(batch[27:]))
	if attrs&0x08 != 0 {
		first = int64(binary.BigEndian.Uint64(batch[35:])) // log append time: the broker's, for every record
	}
	body := batch[batchHeaderSize:]
	if codec := compress.Compression(attrs & 0x07); codec != compress.None {
		if body, err = d.decompress(codec, body); err != nil {
			return dst, from, nil, count, fmt.Errorf("batch at %s/%d@%d: %w", topic, partition, base, err)
		}
	}
	n := len(dst)
	if dst, err = d.decodeRecords(dst, topic, partition, base, first, attrs&0x08 != 0, count, body, from); err != nil {
		return dst[:n], from, nil, count, fmt.Errorf("batch at %s/%d@%d: %w", topic, partition, base, err)
	}
	return dst, last + 1, rest, count, nil
}

// countRecords sums the record counts the headers of batches announce.
func countRecords(batches []byte) int {
	n := 0
	for len(batches) >= batchHeaderSize {
		length := int(int32(binary.BigEndian.Uint32(batches[8:])))
		if length < batchHeaderSize-12 || length > len(batches)-12 {
			break
		}
		n += int(int32(binary.BigEndian.Uint32(batches[57:])))
		batches = batches[12+length:]
	}
	return n
}

func (d *batchDecoder) decompress(codec compress.Compression, body []byte) ([]byte, error) {
	c := codec.Codec()
	if c == nil {
		return nil, fmt.Errorf("unsupported compression codec %d", codec)
	}
	r := c.NewReader(bytes.NewReader(body))
	defer r.Close()
	d.body.Reset()
	if _, err := d.body.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name(), err)
	}
	return d.body.Bytes(), nil
}

var errShortRecord = errors.New("record cut short")

// decodeRecords appends the count records of a batch's body (decompressed)
// that are at or past from.
func (d *batchDecoder) decodeRecords(dst []Record, topic string, partition int, base, first int64, appendTime bool, count int32, body []byte, from int64) ([]Record, error) {
	r := &d.scratch
	for i := int32(0); i < count; i++ {
		size, n := binary.Varint(body)
		if n <= 0 || size < 0 || size > int64(len(body)-n) {
			return dst, errShortRecord
		}
		rec := body[n : n+int(size)]
		body = body[n+int(size):]
		if err := r.parse(rec); err != nil {
			return dst, err
		}
		offset := base + r.offsetDelta
		if offset < from {
			continue
		}
		ts := first
		if !appendTime {
			ts += r.timestampDelta
		}
		dst = append(dst, r.copy(d, topic, partition, offset, ts))
	}
	return dst, nil
}

// recordView is a record of a batch, its byte fields pointing into the
// response. One is reused for every record of a response.
type recordView struct {
	timestampDelta, offsetDelta int64
	key, value                  []byte
	keyNull, valueNull          bool
	headers                     []headerView
	headerBytes                 int
}

type headerView struct {
	key, value []byte
	valueNull  bool
}

func (r *recordView) parse(b []byte) error {
	d := varintReader{b: b}
	d.skip(1) // attributes: unused since magic 2
	r.timestampDelta = d.varint()
	r.offsetDelta = d.varint()
	r.key, r.keyNull = d.bytes()
	r.value, r.valueNull = d.bytes()
	nh := d.varint()
	if nh < 0 || nh > int64(len(d.b)) {
		return errShortRecord
	}
	r.headers, r.headerBytes = r.headers[:0], 0
	for range nh {
		var h headerView
		h.key, _ = d.bytes()
		h.value, h.valueNull = d.bytes()
		r.headers = append(r.headers, h)
		r.headerBytes += len(h.value)
	}
	if d.bad {
		return errShortRecord
	}
	return nil
}

// copy makes the record ordo hands out: key, value and header values in
// one allocation, so that a record waiting long keeps only its own bytes
// alive, never the response it came in.
func (r *recordView) copy(d *batchDecoder, topic string, partition int, offset, ts int64) Record {
	rec := Record{Topic: topic, Partition: partition, Offset: offset, Time: time.UnixMilli(ts)}
	buf := make([]byte, 0, len(r.key)+len(r.value)+r.headerBytes)
	if !r.keyNull {
		buf = append(buf, r.key...)
		rec.Key = buf[:len(buf):len(buf)]
	}
	if !r.valueNull {
		at := len(buf)
		buf = append(buf, r.value...)
		rec.Value = buf[at:len(buf):len(buf)]
	}
	if len(r.headers) > 0 {
		rec.Headers = make([]Header, len(r.headers))
		for i, h := range r.headers {
			rec.Headers[i].Key = d.headerKey(h.key)
			if !h.valueNull {
				at := len(buf)
				buf = append(buf, h.value...)
				rec.Headers[i].Value = buf[at:len(buf):len(buf)]
			}
		}
	}
	return rec
}

// varintReader reads the zig-zag varints and length-prefixed byte fields of
// a record; a field past the end marks it bad and reads as empty.
type varintReader struct {
	b   []byte
	bad bool
}

func (d *varintReader) skip(n int) {
	if len(d.b) < n {
		d.bad, d.b = true, nil
		return
	}
	d.b = d.b[n:]
}

func (d *varintReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad, d.b = true, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed field; a length of -1 is null.
func (d *varintReader) bytes() (b []byte, null bool) {
	n := d.varint()
	if n < 0 {
		return nil, true
	}
	if n > int64(len(d.b)) {
		d.bad, d.b = true, nil
		return nil, true
	}
	b, d.b = d.b[:n:n], d.b[n:]
	return b, false
}
