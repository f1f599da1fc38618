// Package envelope is the wire format of a job record's value: a msgpack map
// that names the kind, the id, the raw args, when it was enqueued, the runs it
// had and its metadata. It is internal so that its Go shape can change while
// the bytes stay compatible; package jobs reads and writes it, and exports
// EnvelopeVersion and EnvelopeVersionOf for operators.
package envelope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// The record headers that carry a job's kind and id beside its envelope, so
// that a reader routes a record without decoding its value. Package jobs
// spells them too (jobs.HeaderKind, jobs.HeaderJobID), as users read them;
// TestInternalPackagesSpellJobsNamesAlike (jobs) keeps the two alike.
const (
	HeaderKind  = "ordo-kind"
	HeaderJobID = "ordo-job-id"
)

// Version is the envelope format this package writes. Readers accept
// any version from 1 on: later versions may only add fields, which older
// readers skip.
const Version = 1

// Envelope is the value of a job record: a msgpack map with the string keys
// in the tags, so that a newer writer can add fields without breaking an
// older reader, and so that producers in other languages can write jobs.
// Args are the job args as msgpack, kept raw so the envelope decodes without
// knowing the job type: a value is routed (and dead-lettered) by its kind
// before its args are touched.
type Envelope struct {
	Version    int                `msgpack:"v"`
	Kind       string             `msgpack:"kind"`
	ID         string             `msgpack:"id"`
	Args       msgpack.RawMessage `msgpack:"args"`
	EnqueuedAt time.Time          `msgpack:"enqueued_at"`
	// Attempt counts the runs the job had before this record was
	// written: 0 at enqueue ("never run"). Job.Attempt, which counts from
	// 1, is Attempt plus the number of the current run of this record.
	Attempt  int               `msgpack:"attempt"`
	Metadata map[string]string `msgpack:"meta,omitempty"`
}

var (
	// ErrUndecodable is wrapped by every Decode error: the value is
	// not a job envelope and never will be, so it belongs in the dead-letter
	// topic, not in a retry. It is jobs.ErrUndecodable, so its text is
	// jobs'.
	ErrUndecodable = errors.New("jobs: undecodable envelope")
	// ErrInvalid is wrapped by Encode errors: the envelope
	// is one Decode would refuse, so it is never written. Encode's errors
	// reach users wrapped in jobs.ErrInvalidEnqueue, which names jobs.
	ErrInvalid = errors.New("invalid envelope")
)

// Encode returns env as msgpack. It refuses an envelope that
// Decode would refuse (version below 1, no kind, no id, args that are
// not exactly one msgpack value, negative attempt), so that what is written
// can be read. Keys are written in a fixed order, metadata sorted, so equal
// envelopes encode to equal bytes.
func Encode(env *Envelope) ([]byte, error) {
	if err := checkEnvelope(env); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(64 + len(env.Kind) + len(env.ID) + len(env.Args))
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	fields := 6
	if len(env.Metadata) > 0 {
		fields++
	}
	err := errors.Join(
		enc.EncodeMapLen(fields),
		enc.EncodeString("v"), enc.EncodeInt(int64(env.Version)),
		enc.EncodeString("kind"), enc.EncodeString(env.Kind),
		enc.EncodeString("id"), enc.EncodeString(env.ID),
		enc.EncodeString("args"), enc.Encode(env.Args),
		enc.EncodeString("enqueued_at"), enc.EncodeTime(env.EnqueuedAt),
		enc.EncodeString("attempt"), enc.EncodeInt(int64(env.Attempt)),
	)
	if err == nil && len(env.Metadata) > 0 {
		err = errors.Join(enc.EncodeString("meta"), enc.EncodeMapLen(len(env.Metadata)))
		for _, k := range slices.Sorted(maps.Keys(env.Metadata)) {
			err = errors.Join(err, enc.EncodeString(k), enc.EncodeString(env.Metadata[k]))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("encode envelope of %s job %s: %w", env.Kind, env.ID, err)
	}
	return buf.Bytes(), nil
}

func checkEnvelope(env *Envelope) error {
	var why string
	switch {
	case env == nil:
		why = "envelope is nil"
	case env.Version < 1:
		why = fmt.Sprintf("version %d is below 1", env.Version)
	case env.Kind == "":
		why = "kind is empty"
	case env.ID == "":
		why = "id is empty"
	case env.Attempt < 0:
		why = fmt.Sprintf("attempt %d is negative", env.Attempt)
	case len(env.Args) == 0:
		why = "args are empty (msgpack nil is 0xc0)"
	default:
		if err := checkOneValue(env.Args); err != nil {
			why = "args: " + err.Error()
		}
	}
	if why != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, why)
	}
	return nil
}

// checkOneValue tells whether b is exactly one well-formed msgpack value.
func checkOneValue(b []byte) error {
	n, err := msgpackValueLen(b)
	if err != nil {
		return err
	}
	if n < len(b) {
		return fmt.Errorf("%d bytes after the msgpack value", len(b)-n)
	}
	return nil
}

// errTruncated: a length or count in the value points past its end.
var errTruncated = errors.New("truncated")

// msgpackValueLen returns the length of the msgpack value at the start of b,
// checking its structure without decoding or allocating. Decoding untrusted
// bytes needs this first: the msgpack decoder believes declared lengths, so
// a ten-byte value claiming a 3 GB string makes it allocate, and a pooled
// decoder keeps the grown buffer, so such values leak memory call after call
// (FuzzDecodeEnvelope found it). Here every length is checked against the
// bytes that are left, in one pass with no recursion, however deep the
// nesting.
func msgpackValueLen(b []byte) (int, error) {
	pos := 0
	// pending counts the values still to read; each takes at least one
	// byte, so more pending values than bytes left means truncation, and
	// the count cannot overflow.
	pending := 1
	take := func(n uint64) error {
		if n > uint64(len(b)-pos) {
			return errTruncated
		}
		pos += int(n)
		return nil
	}
	length := func(size int) (uint64, error) {
		if size > len(b)-pos {
			return 0, errTruncated
		}
		var n uint64
		for _, c := range b[pos : pos+size] {
			n = n<<8 | uint64(c)
		}
		pos += size
		return n, nil
	}
	for ; pending > 0; pending-- {
		if pending > len(b)-pos {
			return 0, errTruncated
		}
		c := b[pos]
		pos++
		var err error
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			// fixints, nil, false, true: the code is the value
		case c <= 0x8f: // fixmap
			pending += 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			pending += int(c & 0x0f)
		case c <= 0xbf: // fixstr
			err = take(uint64(c & 0x1f))
		case c >= 0xc4 && c <= 0xc6: // bin 8, 16, 32
			var n uint64
			if n, err = length(1 << (c - 0xc4)); err == nil {
				err = take(n)
			}
		case c >= 0xd9 && c <= 0xdb: // str 8, 16, 32
			var n uint64
			if n, err = length(1 << (c - 0xd9)); err == nil {
				err = take(n)
			}
		case c == 0xc7 || c == 0xc8 || c == 0xc9: // ext: length, type, data
			var n uint64
			if n, err = length(1 << (c - 0xc7)); err == nil {
				err = take(n + 1)
			}
		case c == 0xca || c == 0xce || c == 0xd2: // float32, uint32, int32
			err = take(4)
		case c == 0xcb || c == 0xcf || c == 0xd3: // float64, uint64, int64
			err = take(8)
		case c == 0xcc || c == 0xd0: // uint8, int8
			err = take(1)
		case c == 0xcd || c == 0xd1: // uint16, int16
			err = take(2)
		case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16: type, data
			err = take(1 + 1<<(c-0xd4))
		case c == 0xdc || c == 0xdd || c == 0xde || c == 0xdf: // array16/32, map16/32
			var n uint64
			if n, err = length(2 << ((c - 0xdc) % 2)); err != nil {
				break
			}
			if c >= 0xde {
				n *= 2
			}
			if n > uint64(len(b)-pos) {
				return 0, errTruncated
			}
			pending += int(n)
		default: // 0xc1 is never used
			return 0, fmt.Errorf("invalid msgpack code 0x%02x at byte %d", c, pos-1)
		}
		if err != nil {
			return 0, err
		}
	}
	return pos, nil
}

// Decode reads a job record's value. Fields it does not know are
// skipped, so it reads envelopes of later versions. Every error wraps
// ErrUndecodable and says why: an empty value, bytes that are not a msgpack
// map, a truncated value, a field of the wrong type, trailing bytes, a
// missing kind, id or args, a version below 1 or a negative attempt.
// EnqueuedAt is returned in UTC. The envelope shares no memory with b.
func Decode(b []byte) (*Envelope, error) {
	var v View
	if err := DecodeView(b, &v); err != nil {
		return nil, err
	}
	return &Envelope{
		Version:    v.Version,
		Kind:       string(v.Kind),
		ID:         string(v.ID),
		Args:       bytes.Clone(v.Args),
		EnqueuedAt: v.EnqueuedAt,
		Attempt:    v.Attempt,
		Metadata:   v.Metadata,
	}, nil
}

// View is a decoded envelope whose byte fields alias the record's
// value, so that reading one on the per-job path copies nothing.
type View struct {
	Version    int
	Kind, ID   []byte
	Args       []byte // the raw msgpack value
	EnqueuedAt time.Time
	Attempt    int
	Metadata   map[string]string // nil when absent or empty
}

// DecodeView decodes b into v as Decode does, with the same
// errors, allocating only for metadata. It accepts exactly what the msgpack
// library's Decoder accepted when Decode was built on it, quirks
// included, so that no record changes fate between a job and a dead letter
// (FuzzDecodeEnvelopeMatchesReference holds it to that). On error v holds
// whatever was read before it.
func DecodeView(b []byte, v *View) error {
	// Most values are well-formed envelopes: one pass reads them, and it
	// checks every length and code it meets as the structure check would.
	// Anything else is read again with the structure check first, which
	// gives bad input the errors it always had, and settles the one
	// construct the two read differently (an ext header before a map).
	if len(b) > 0 && isMapCode(b[0]) {
		if extBeforeMap, err := parseEnvelope(b, v); err == nil && !extBeforeMap {
			return nil
		}
	}
	return decodeViewChecked(b, v)
}

// decodeViewChecked is DecodeView with the structure check
// first.
func decodeViewChecked(b []byte, v *View) error {
	*v = View{}
	if len(b) == 0 {
		return fmt.Errorf("%w: empty value", ErrUndecodable)
	}
	// A struct decoder would also take a msgpack array, field by field in
	// order; an envelope is a map, so that a reader never mistakes one
	// field for another.
	if !isMapCode(b[0]) {
		return fmt.Errorf("%w: not a msgpack map (first byte 0x%02x)", ErrUndecodable, b[0])
	}
	end, err := msgpackValueLen(b)
	switch {
	case errors.Is(err, errTruncated):
		return fmt.Errorf("%w: truncated: a length or count points past the end of the %d bytes", ErrUndecodable, len(b))
	case err != nil:
		return fmt.Errorf("%w: %w", ErrUndecodable, err)
	case end < len(b):
		return fmt.Errorf("%w: %d bytes after the envelope", ErrUndecodable, len(b)-end)
	}
	_, err = parseEnvelope(b, v)
	return err
}

// parseEnvelope reads the envelope's fields into v and checks them. It says
// whether it read a map behind an ext header.
func parseEnvelope(b []byte, v *View) (extBeforeMap bool, err error) {
	*v = View{}
	r := msgpackReader{b: b}
	n, err := r.mapLen()
	if err != nil {
		return r.extBeforeMap, undecodable("map header", err)
	}
	seenArgs := false
	for range n {
		key, err := r.str()
		if err != nil {
			return r.extBeforeMap, undecodable("a field name", err)
		}
		switch string(key) {
		case "v":
			v.Version, err = r.int()
		case "kind":
			v.Kind, err = r.str()
		case "id":
			v.ID, err = r.str()
		case "args":
			v.Args, err = r.value()
			seenArgs = err == nil
		case "enqueued_at":
			v.EnqueuedAt, err = r.time()
		case "attempt":
			v.Attempt, err = r.int()
		case "meta":
			v.Metadata, err = r.stringMap()
		default:
			_, err = r.value()
		}
		if err != nil {
			return r.extBeforeMap, undecodable(fmt.Sprintf("field %q", key), err)
		}
	}
	// The structure check above saw no trailing bytes, but a meta field
	// behind an ext header (see mapLen) is read out of step with it.
	if rest := len(b) - r.pos; rest > 0 {
		return r.extBeforeMap, fmt.Errorf("%w: %d bytes after the envelope", ErrUndecodable, rest)
	}
	var why string
	switch {
	case v.Version < 1:
		why = fmt.Sprintf("version %d is below 1 (or missing)", v.Version)
	case len(v.Kind) == 0:
		why = "missing kind"
	case len(v.ID) == 0:
		why = "missing id"
	case !seenArgs:
		why = "missing args"
	case v.Attempt < 0:
		why = fmt.Sprintf("attempt %d is negative", v.Attempt)
	}
	if why != "" {
		return r.extBeforeMap, fmt.Errorf("%w: %s", ErrUndecodable, why)
	}
	return r.extBeforeMap, nil
}

func isMapCode(c byte) bool {
	return c >= 0x80 && c <= 0x8f || c == 0xde || c == 0xdf // fixmap, map16, map32
}

func undecodable(what string, err error) error {
	if errors.Is(err, errTruncated) {
		return fmt.Errorf("%w: truncated in %s", ErrUndecodable, what)
	}
	return fmt.Errorf("%w: %s: %w", ErrUndecodable, what, err)
}

// msgpackReader reads msgpack values from b in the order and by the rules
// of the msgpack library's Decoder methods named on each, which is what
// Decode used before, but returns views into b instead of copies.
// Reading past the end of b is errTruncated.
type msgpackReader struct {
	b   []byte
	pos int
	// extBeforeMap: a map was read behind an ext header, which the
	// structure check reads as the ext's data instead.
	extBeforeMap bool
}

func (r *msgpackReader) next(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.pos) {
		return nil, errTruncated
	}
	p := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return p, nil
}

func (r *msgpackReader) code() (byte, error) {
	if r.pos == len(r.b) {
		return 0, errTruncated
	}
	r.pos++
	return r.b[r.pos-1], nil
}

// uint reads a big-endian unsigned integer of size bytes.
func (r *msgpackReader) uint(size int) (uint64, error) {
	p, err := r.next(uint64(size))
	var n uint64
	for _, c := range p {
		n = n<<8 | uint64(c)
	}
	return n, err
}

// value reads any one value, as Decoder.Skip and Decoder.DecodeRaw do.
func (r *msgpackReader) value() ([]byte, error) {
	n, err := msgpackValueLen(r.b[r.pos:])
	if err != nil {
		return nil, err
	}
	return r.next(uint64(n))
}

// str reads what Decoder.DecodeString reads: a str, a bin, or nil as empty.
func (r *msgpackReader) str() ([]byte, error) {
	c, err := r.code()
	if err != nil {
		return nil, err
	}
	return r.strAfter(c)
}

func (r *msgpackReader) strAfter(c byte) ([]byte, error) {
	var n uint64
	var err error
	switch {
	case c == 0xc0: // nil
		return nil, nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb: // str 8, 16, 32
		n, err = r.uint(1 << (c - 0xd9))
	case c >= 0xc4 && c <= 0xc6: // bin 8, 16, 32
		n, err = r.uint(1 << (c - 0xc4))
	default:
		return nil, fmt.Errorf("msgpack code 0x%02x is not a string", c)
	}
	if err != nil {
		return nil, err
	}
	return r.next(n)
}

// int reads what Decoder.DecodeInt reads.
func (r *msgpackReader) int() (int, error) {
	n, err := r.int64()
	return int(n), err
}

// int64 reads what Decoder.DecodeInt64 reads: any msgpack integer, nil as
// 0, and a uint64 above MaxInt64 wrapped to a negative number. A float is
// refused, even a whole one.
func (r *msgpackReader) int64() (int64, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f || c >= 0xe0: // positive and negative fixint
		return int64(int8(c)), nil
	case c == 0xc0: // nil
		return 0, nil
	case c >= 0xcc && c <= 0xcf: // uint 8, 16, 32, 64
		n, err := r.uint(1 << (c - 0xcc))
		return int64(n), err
	case c >= 0xd0 && c <= 0xd3: // int 8, 16, 32, 64: sign-extend
		size := 1 << (c - 0xd0)
		n, err := r.uint(size)
		shift := 64 - 8*size
		return int64(n<<shift) >> shift, err
	}
	return 0, fmt.Errorf("msgpack code 0x%02x is not an integer", c)
}

func isExtCode(c byte) bool {
	return c >= 0xd4 && c <= 0xd8 || c >= 0xc7 && c <= 0xc9 // fixext 1 to 16, ext 8, 16, 32
}

// extHeader reads the length and type of the ext value of code c, leaving
// its data.
func (r *msgpackReader) extHeader(c byte) (size uint64, typ int8, err error) {
	if c >= 0xd4 && c <= 0xd8 {
		size = 1 << (c - 0xd4)
	} else if size, err = r.uint(1 << (c - 0xc7)); err != nil {
		return 0, 0, err
	}
	t, err := r.code()
	return size, int8(t), err
}

// mapLen reads what Decoder.DecodeMapLen reads: a map header, -1 for nil.
// The library skips an ext header in front of a map, ignoring the ext's
// length, so a meta field written that way decoded, and still does.
func (r *msgpackReader) mapLen() (int, error) {
	c, err := r.code()
	if err != nil {
		return 0, err
	}
	if isExtCode(c) {
		r.extBeforeMap = true
		if _, _, err := r.extHeader(c); err != nil {
			return 0, err
		}
		if c, err = r.code(); err != nil {
			return 0, err
		}
	}
	switch {
	case c == 0xc0: // nil
		return -1, nil
	case c >= 0x80 && c <= 0x8f: // fixmap
		return int(c & 0x0f), nil
	case c == 0xde || c == 0xdf: // map 16, 32
		n, err := r.uint(2 << (c - 0xde))
		return int(n), err
	}
	return 0, fmt.Errorf("msgpack code 0x%02x is not a map", c)
}

// stringMap reads a map of strings; nil and an empty map are nil, so an
// envelope decodes to the same value however its writer spelt "none".
func (r *msgpackReader) stringMap() (map[string]string, error) {
	n, err := r.mapLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	// n comes from the input: grow with what is actually there.
	m := make(map[string]string, min(n, 16))
	for range n {
		k, err := r.str()
		if err != nil {
			return nil, err
		}
		v, err := r.str()
		if err != nil {
			return nil, err
		}
		m[string(k)] = string(v)
	}
	return m, nil
}

// time reads what Decoder.DecodeTime reads, and nil as the zero time: the
// timestamp extension (type -1, or 13 as NodeJS writes it) in its 4, 8 and
// 12-byte forms under any ext code, an RFC 3339 string, and the library's
// legacy [seconds, nanoseconds] array. The time is in UTC.
func (r *msgpackReader) time() (time.Time, error) {
	c, err := r.code()
	if err != nil {
		return time.Time{}, err
	}
	switch {
	case c == 0xc0: // nil
		return time.Time{}, nil
	case c == 0x92: // fixarray of 2
		sec, err := r.int64()
		if err != nil {
			return time.Time{}, err
		}
		nsec, err := r.int64()
		return time.Unix(sec, nsec).UTC(), err
	case c >= 0xa0 && c <= 0xbf || c >= 0xd9 && c <= 0xdb: // str, not bin or nil
		s, err := r.strAfter(c)
		if err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, string(s))
		return t.UTC(), err
	case !isExtCode(c):
		return time.Time{}, fmt.Errorf("msgpack code 0x%02x is not a timestamp", c)
	}
	size, typ, err := r.extHeader(c)
	if err != nil {
		return time.Time{}, err
	}
	if typ != -1 && typ != 13 {
		return time.Time{}, fmt.Errorf("ext type %d is not a timestamp", typ)
	}
	p, err := r.next(size)
	switch {
	case err != nil:
		return time.Time{}, err
	case len(p) == 4:
		return time.Unix(int64(binary.BigEndian.Uint32(p)), 0).UTC(), nil
	case len(p) == 8:
		n := binary.BigEndian.Uint64(p)
		return time.Unix(int64(n&(1<<34-1)), int64(n>>34)).UTC(), nil
	case len(p) == 12:
		return time.Unix(int64(binary.BigEndian.Uint64(p[4:])), int64(binary.BigEndian.Uint32(p))).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("a timestamp of %d bytes, not 4, 8 or 12", len(p))
}

// NewID returns a 26-character id like a ULID: 48 bits of milliseconds
// since the Unix epoch, then 80 random bits, in Crockford base32. Ids sort by
// enqueue time to the millisecond, which makes logs and dead letters easy to
// read, and 80 random bits make a clash within a millisecond negligible.
func NewID(now time.Time) string {
	var entropy [10]byte
	_, _ = rand.Read(entropy[:]) // never fails (crypto/rand, Go 1.24+)
	return encodeID(now, entropy)
}

// DerivedID returns an id of NewID's form whose time is at and whose 80
// other bits are taken from a SHA-256 of seed: the same (at, seed) always
// gives the same id, so a job enqueued again for the same reason (a
// periodic job's tick) is recognisable by its id.
func DerivedID(at time.Time, seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return encodeID(at, [10]byte(sum[:10]))
}

func encodeID(at time.Time, entropy [10]byte) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
	copy(b[6:], entropy[:])
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var out [26]byte
	for i := len(out) - 1; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
