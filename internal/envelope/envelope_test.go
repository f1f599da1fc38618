package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

type envelopeTestArgs struct {
	UserID string   `msgpack:"user_id"`
	Cents  int64    `msgpack:"cents"`
	Tags   []string `msgpack:"tags"`
	NoTag  bool
}

func (envelopeTestArgs) Kind() string { return "envelope_test" }

func validEnvelope(t testing.TB) *Envelope {
	t.Helper()
	args, err := msgpack.Marshal(envelopeTestArgs{UserID: "user-42", Cents: 500, Tags: []string{"a", "b"}, NoTag: true})
	if err != nil {
		t.Fatal(err)
	}
	return &Envelope{
		Version:    Version,
		Kind:       "envelope_test",
		ID:         NewID(time.Now()),
		Args:       args,
		EnqueuedAt: time.Date(2025, 11, 25, 17, 30, 0, 123456789, time.UTC),
		Attempt:    0,
		Metadata:   map[string]string{"trace": "abc", "tenant": "t1"},
	}
}

func mustEncode(t testing.TB, env *Envelope) []byte {
	t.Helper()
	b, err := Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustMarshal encodes v with plain msgpack, the way another writer would.
func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameEnvelope(a, b *Envelope) bool {
	return a.Version == b.Version && a.Kind == b.Kind && a.ID == b.ID && bytes.Equal(a.Args, b.Args) &&
		a.EnqueuedAt.Equal(b.EnqueuedAt) && a.Attempt == b.Attempt && maps.Equal(a.Metadata, b.Metadata)
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, meta := range []map[string]string{nil, {"trace": "abc", "tenant": "t1"}} {
		want := validEnvelope(t)
		want.Metadata = meta
		want.Attempt = 3
		got, err := Decode(mustEncode(t, want))
		if err != nil {
			t.Fatal(err)
		}
		if !sameEnvelope(got, want) {
			t.Fatalf("decoded %+v, want %+v", got, want)
		}
		if got.EnqueuedAt.Location() != time.UTC {
			t.Errorf("EnqueuedAt is in %v, want UTC", got.EnqueuedAt.Location())
		}
		var args envelopeTestArgs
		if err := msgpack.Unmarshal(got.Args, &args); err != nil {
			t.Fatal(err)
		}
		if args.UserID != "user-42" || args.Cents != 500 || !slices.Equal(args.Tags, []string{"a", "b"}) || !args.NoTag {
			t.Errorf("args decoded to %+v", args)
		}
	}
}

// TestEnvelopeIsAMsgpackMapWithStringKeys pins the wire format: any msgpack
// library, in any language, reads and writes jobs as a map of these keys, and
// the args as a map of the struct's msgpack names (field names when untagged).
func TestEnvelopeIsAMsgpackMapWithStringKeys(t *testing.T) {
	var m map[string]any
	if err := msgpack.Unmarshal(mustEncode(t, validEnvelope(t)), &m); err != nil {
		t.Fatal(err)
	}
	keys := slices.Sorted(maps.Keys(m))
	if want := []string{"args", "attempt", "enqueued_at", "id", "kind", "meta", "v"}; !slices.Equal(keys, want) {
		t.Fatalf("envelope keys %v, want %v", keys, want)
	}
	args, _ := m["args"].(map[string]any)
	if keys := slices.Sorted(maps.Keys(args)); !slices.Equal(keys, []string{"NoTag", "cents", "tags", "user_id"}) {
		t.Errorf("args keys %v", keys)
	}
	if _, ok := m["enqueued_at"].(time.Time); !ok {
		t.Errorf("enqueued_at is a %T, want a msgpack timestamp", m["enqueued_at"])
	}
}

func TestEncodeEnvelopeIsDeterministic(t *testing.T) {
	env := validEnvelope(t)
	env.Metadata = map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}
	first := mustEncode(t, env)
	for range 20 {
		if !bytes.Equal(mustEncode(t, env), first) {
			t.Fatal("the same envelope encoded to different bytes")
		}
	}
}

// TestDecodeEnvelopeReadsALaterVersion: a newer writer may add fields; an
// older reader skips them and still runs the job.
func TestDecodeEnvelopeReadsALaterVersion(t *testing.T) {
	args := mustMarshal(t, envelopeTestArgs{UserID: "user-7"})
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	v2 := mustMarshal(t, map[string]any{
		"v":           2,
		"kind":        "envelope_test",
		"id":          "job-1",
		"args":        msgpack.RawMessage(args),
		"enqueued_at": at,
		"attempt":     1,
		"meta":        map[string]string{"k": "v"},
		"priority":    5,
		"deadline":    at.Add(time.Hour),
		"trace":       map[string]any{"spans": []any{1, "two", 3.0, nil, map[string]any{"x": []byte{1}}}},
	})
	got, err := Decode(v2)
	if err != nil {
		t.Fatalf("a v2 envelope with unknown fields: %v", err)
	}
	want := &Envelope{Version: 2, Kind: "envelope_test", ID: "job-1", Args: args, EnqueuedAt: at, Attempt: 1,
		Metadata: map[string]string{"k": "v"}}
	if !sameEnvelope(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
}

func TestDecodeEnvelopeRefusesWhatIsNotAnEnvelope(t *testing.T) {
	valid := mustEncode(t, validEnvelope(t))
	args := mustMarshal(t, envelopeTestArgs{})
	at := time.Now()
	withField := func(drop string, set map[string]any) []byte {
		m := map[string]any{"v": 1, "kind": "k", "id": "i", "args": msgpack.RawMessage(args), "enqueued_at": at, "attempt": 0}
		delete(m, drop)
		maps.Copy(m, set)
		return mustMarshal(t, m)
	}
	cases := []struct {
		name  string
		value []byte
		why   string
	}{
		{"empty", nil, "empty value"},
		{"random bytes", []byte("\xc1\x93\xff\x00garbage"), "not a msgpack map"},
		{"text", []byte(`{"kind":"json"}`), "not a msgpack map"},
		{"msgpack nil", []byte{0xc0}, "not a msgpack map"},
		{"an array, not a map", mustMarshal(t, []any{1, "k", "i", args, at, 0}), "not a msgpack map"},
		{"truncated", valid[:len(valid)-5], "truncated"},
		{"truncated map header", []byte{0xde, 0x00}, "truncated"},
		{"trailing bytes", append(slices.Clone(valid), 0x01), "1 bytes after the envelope"},
		{"kind is an int", withField("", map[string]any{"kind": 7}), `field "kind"`},
		{"id is a map", withField("", map[string]any{"id": map[string]any{}}), `field "id"`},
		{"version is a string", withField("", map[string]any{"v": "1"}), `field "v"`},
		{"enqueued_at is a bool", withField("", map[string]any{"enqueued_at": true}), `field "enqueued_at"`},
		{"meta values are ints", withField("", map[string]any{"meta": map[string]int{"a": 1}}), `field "meta"`},
		{"a field name is an int", mustMarshal(t, map[int]any{1: "x"}), "field name"},
		{"missing kind", withField("kind", nil), "missing kind"},
		{"empty kind", withField("", map[string]any{"kind": ""}), "missing kind"},
		{"missing id", withField("id", nil), "missing id"},
		{"missing args", withField("args", nil), "missing args"},
		{"missing version", withField("v", nil), "version 0"},
		{"version 0", withField("", map[string]any{"v": 0}), "version 0"},
		{"negative attempt", withField("", map[string]any{"attempt": -1}), "attempt -1"},
	}
	for _, c := range cases {
		_, err := Decode(c.value)
		if !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: Decode returned %v, want an error wrapping ErrUndecodable", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: error %q does not say %q", c.name, err, c.why)
		}
	}
}

// TestDecodeEnvelopeBelievesNoDeclaredLength guards against what
// FuzzDecodeEnvelope found: msgpack's decoder allocates what a value
// declares, and a pooled decoder keeps the grown buffer, so that 30 decodes
// of a 6-byte value claiming a 3 GB string allocated 10 GB. A consumer
// decodes whatever is in the topic; a few such records must not take the
// process down.
func TestDecodeEnvelopeBelievesNoDeclaredLength(t *testing.T) {
	values := [][]byte{
		{0x81, 0xa1, 'x', 0xdb, 0xb3, 0x37, 0x73, 0xe3, 'x'},           // str32 of 3 GB
		{0x81, 0xa1, 'x', 0xc6, 0xff, 0xff, 0xff, 0xff},                // bin32 of 4 GB
		{0x81, 0xa1, 'x', 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01},          // ext32 of 2 GB
		{0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},          // array32 of 4 G values
		{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01},                // map32 of 4 G fields
		{0x82, 0xa4, 'm', 'e', 't', 'a', 0xdf, 0x7f, 0xff, 0xff, 0xff}, // meta of 2 G entries
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	for range 50 {
		for _, v := range values {
			if _, err := Decode(v); !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "truncated") {
				t.Fatalf("% x: %v; want ErrUndecodable saying truncated", v, err)
			}
		}
	}
	runtime.ReadMemStats(&ms)
	if got := ms.TotalAlloc - before; got > 64<<20 {
		t.Fatalf("300 decodes of values under 12 bytes allocated %d KB", got>>10)
	}
}

// TestMsgpackValueLenAgreesWithMsgpack checks the structure scan against
// the msgpack library on values of every type and size class.
func TestMsgpackValueLenAgreesWithMsgpack(t *testing.T) {
	long := strings.Repeat("x", 70_000)
	values := []any{
		nil, true, false, 0, 1, -1, -33, 127, 128, 255, 256, 65535, 65536, 1 << 40, -1 << 40, uint64(1<<64 - 1),
		float32(1.5), 2.5, "", "a", strings.Repeat("y", 31), strings.Repeat("y", 32), strings.Repeat("y", 300), long,
		[]byte{}, []byte{1}, make([]byte, 300), []byte(long),
		[]int{}, make([]int, 15), make([]int, 16), make([]int, 70_000),
		map[string]int{}, map[string]int{"a": 1}, map[int]bool{1: true, 2: false, 3: true, 4: false, 5: true, 6: false,
			7: true, 8: false, 9: true, 10: false, 11: true, 12: false, 13: true, 14: false, 15: true, 16: false},
		time.Unix(1, 0), time.Unix(1<<33, 5), time.Unix(-1, 0), time.Unix(1<<40, 999),
		[]any{map[string]any{"a": []any{nil, "b", 1.0, []byte("c"), map[string]any{}}}},
		msgpack.RawMessage{0xd4, 0x01, 0x02}, msgpack.RawMessage{0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		msgpack.RawMessage{0xc7, 0x02, 0x05, 'h', 'i'}, msgpack.RawMessage{0xc8, 0x00, 0x01, 0x05, 'h'},
	}
	for _, v := range values {
		b := mustMarshal(t, v)
		if n, err := msgpackValueLen(b); err != nil || n != len(b) {
			t.Errorf("%T %.40v: msgpackValueLen = %d, %v; want %d", v, v, n, err, len(b))
		}
		for cut := range min(len(b), 40) {
			if _, err := msgpackValueLen(b[:cut]); !errors.Is(err, errTruncated) {
				t.Errorf("%T %.40v cut to %d bytes: %v, want errTruncated", v, v, cut, err)
			}
		}
	}
}

func TestDecodeEnvelopeRefusesEveryTruncation(t *testing.T) {
	valid := mustEncode(t, validEnvelope(t))
	for n := range len(valid) {
		if env, err := Decode(valid[:n]); !errors.Is(err, ErrUndecodable) {
			t.Fatalf("the first %d of %d bytes decoded to %+v, %v; want ErrUndecodable", n, len(valid), env, err)
		}
	}
}

func TestEncodeEnvelopeRefusesWhatCouldNotBeDecoded(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Envelope)
	}{
		{"version 0", func(e *Envelope) { e.Version = 0 }},
		{"no kind", func(e *Envelope) { e.Kind = "" }},
		{"no id", func(e *Envelope) { e.ID = "" }},
		{"no args", func(e *Envelope) { e.Args = nil }},
		{"args that are not msgpack", func(e *Envelope) { e.Args = []byte{0xc1} }},
		{"args of two values", func(e *Envelope) { e.Args = []byte{0x01, 0x02} }},
		{"truncated args", func(e *Envelope) { e.Args = e.Args[:len(e.Args)-1] }},
		{"negative attempt", func(e *Envelope) { e.Attempt = -1 }},
	} {
		env := validEnvelope(t)
		c.change(env)
		if _, err := Encode(env); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode returned %v, want ErrInvalid", c.name, err)
		}
	}
	if _, err := Encode(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil: Encode returned %v, want ErrInvalid", err)
	}
}

func TestJobIDsAreUniqueAndSortByTime(t *testing.T) {
	const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	now := time.Now()
	seen := make(map[string]bool, 100_000)
	for range 100_000 {
		id := NewID(now)
		if len(id) != 26 || strings.Trim(id, crockford) != "" {
			t.Fatalf("id %q is not 26 Crockford base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
	for _, d := range []time.Duration{time.Millisecond, time.Second, 1000 * time.Hour} {
		if a, b := NewID(now), NewID(now.Add(d)); a >= b {
			t.Errorf("id %s of %v does not sort before %s of %v later", a, now, b, d)
		}
	}
	if got := NewID(time.UnixMilli(0))[:10]; got != "0000000000" {
		t.Errorf("the epoch's time part is %q", got)
	}
}

// FuzzDecodeEnvelope: no value, however broken, panics the decoder (a record
// from Kafka is untrusted input), and whatever decodes survives a round trip
// unchanged.
//
//	go test -run - -fuzz 'FuzzDecodeEnvelope$' -fuzztime 20s ./internal/envelope
func FuzzDecodeEnvelope(f *testing.F) {
	for _, b := range envelopeEncodings(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		again, err := Encode(env)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", env, err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", env, err)
		}
		if !sameEnvelope(env, back) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, back)
		}
	})
}

// referenceDecodeEnvelope is Decode as it was when built on the
// msgpack library's Decoder. DecodeView must accept and refuse
// exactly what it does, with the same values, so that no record changes
// fate between a job and a dead letter.
func referenceDecodeEnvelope(b []byte) (*Envelope, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty value", ErrUndecodable)
	}
	if !isMapCode(b[0]) {
		return nil, fmt.Errorf("%w: not a msgpack map (first byte 0x%02x)", ErrUndecodable, b[0])
	}
	end, err := msgpackValueLen(b)
	switch {
	case errors.Is(err, errTruncated):
		return nil, fmt.Errorf("%w: truncated: a length or count points past the end of the %d bytes", ErrUndecodable, len(b))
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	case end < len(b):
		return nil, fmt.Errorf("%w: %d bytes after the envelope", ErrUndecodable, len(b)-end)
	}
	r := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	n, err := dec.DecodeMapLen()
	if err != nil {
		return nil, referenceUndecodable("map header", err)
	}
	env := &Envelope{}
	seenArgs := false
	for range n {
		key, err := dec.DecodeString()
		if err != nil {
			return nil, referenceUndecodable("a field name", err)
		}
		switch key {
		case "v":
			env.Version, err = dec.DecodeInt()
		case "kind":
			env.Kind, err = dec.DecodeString()
		case "id":
			env.ID, err = dec.DecodeString()
		case "args":
			env.Args, err = dec.DecodeRaw()
			seenArgs = err == nil
		case "enqueued_at":
			env.EnqueuedAt, err = referenceDecodeTime(dec)
		case "attempt":
			env.Attempt, err = dec.DecodeInt()
		case "meta":
			env.Metadata, err = referenceDecodeStringMap(dec)
		default:
			err = dec.Skip()
		}
		if err != nil {
			return nil, referenceUndecodable(fmt.Sprintf("field %q", key), err)
		}
	}
	if r.Len() > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the envelope", ErrUndecodable, r.Len())
	}
	var why string
	switch {
	case env.Version < 1:
		why = fmt.Sprintf("version %d is below 1 (or missing)", env.Version)
	case env.Kind == "":
		why = "missing kind"
	case env.ID == "":
		why = "missing id"
	case !seenArgs:
		why = "missing args"
	case env.Attempt < 0:
		why = fmt.Sprintf("attempt %d is negative", env.Attempt)
	}
	if why != "" {
		return nil, fmt.Errorf("%w: %s", ErrUndecodable, why)
	}
	return env, nil
}

func referenceUndecodable(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: truncated in %s: %w", ErrUndecodable, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUndecodable, what, err)
}

func referenceDecodeTime(dec *msgpack.Decoder) (time.Time, error) {
	if c, err := dec.PeekCode(); err != nil {
		return time.Time{}, err
	} else if c == msgpcode.Nil {
		return time.Time{}, dec.DecodeNil()
	}
	t, err := dec.DecodeTime()
	return t.UTC(), err
}

func referenceDecodeStringMap(dec *msgpack.Decoder) (map[string]string, error) {
	n, err := dec.DecodeMapLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	m := make(map[string]string, min(n, 16))
	for range n {
		k, err := dec.DecodeString()
		if err != nil {
			return nil, err
		}
		v, err := dec.DecodeString()
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
	return m, nil
}

// rawMap is a msgpack map of up to 15 pairs of encoded keys and values, in
// order, so that a test chooses every byte of an envelope.
func rawMap(kvs ...[]byte) []byte {
	b := []byte{0x80 | byte(len(kvs)/2)}
	for _, kv := range kvs {
		b = append(b, kv...)
	}
	return b
}

// fixstr encodes s, shorter than 32 bytes, as a msgpack fixstr.
func fixstr(s string) []byte { return append([]byte{0xa0 | byte(len(s))}, s...) }

// sized is code, then the length n as a big-endian integer of size bytes,
// then data: a str, bin or ext (whose data begins with its type) 8, 16 or 32.
func sized(code byte, size int, n int, data ...byte) []byte {
	b := []byte{code}
	for i := size - 1; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return append(b, data...)
}

// envelopeWith is a valid envelope with one field's encoding replaced (or
// added, or, with a nil value, dropped); extra pairs follow.
func envelopeWith(key string, value []byte, extra ...[]byte) []byte {
	fields := []struct {
		key   string
		value []byte
	}{
		{"v", []byte{0x01}},
		{"kind", fixstr("k")},
		{"id", fixstr("i")},
		{"args", []byte{0x81, 0xa1, 'a', 0x01}},
		{"enqueued_at", []byte{0xd6, 0xff, 0x65, 0x00, 0x00, 0x00}},
		{"attempt", []byte{0x00}},
	}
	var kvs [][]byte
	found := false
	for _, f := range fields {
		if f.key == key {
			found = true
			if value == nil {
				continue
			}
			f.value = value
		}
		kvs = append(kvs, fixstr(f.key), f.value)
	}
	if !found && value != nil {
		kvs = append(kvs, fixstr(key), value)
	}
	return rawMap(append(kvs, extra...)...)
}

// envelopeEncodings are envelopes in every encoding a msgpack writer may
// choose for each field, valid or not, including what the library accepts
// beyond the spec: bin for strings, nil for a string, an integer or a map,
// NodeJS's timestamp ext type 13, RFC 3339 strings and [sec, nsec] arrays
// for a time, and an ext header in front of the meta map.
func envelopeEncodings(t testing.TB) [][]byte {
	long := strings.Repeat("k", 300)
	ints := [][]byte{
		{0x00}, {0x02}, {0x7f}, {0xe0}, {0xff}, {0xc0},
		{0xcc, 0x02}, {0xcc, 0xff}, {0xcd, 0x00, 0x02}, {0xce, 0, 0, 0, 2}, {0xce, 0xff, 0xff, 0xff, 0xff},
		{0xcf, 0, 0, 0, 0, 0, 0, 0, 2}, {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, {0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0xd0, 0x02}, {0xd0, 0xfe}, {0xd1, 0x00, 0x02}, {0xd1, 0xff, 0xfe}, {0xd2, 0, 0, 0, 2}, {0xd2, 0xff, 0xff, 0xff, 0xfe},
		{0xd3, 0, 0, 0, 0, 0, 0, 0, 2}, {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe},
		{0xca, 0x3f, 0x80, 0, 0}, {0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, {0xc2}, {0xc3}, fixstr("1"), {0x90}, {0x80},
	}
	strs := [][]byte{
		fixstr("kind-x"), fixstr(""), {0xc0},
		sized(0xd9, 1, 3, 'a', 'b', 'c'), sized(0xda, 2, 3, 'a', 'b', 'c'), sized(0xdb, 4, 3, 'a', 'b', 'c'),
		sized(0xda, 2, len(long), []byte(long)...), sized(0xd9, 1, 0),
		sized(0xc4, 1, 3, 'a', 'b', 'c'), sized(0xc5, 2, 3, 'a', 'b', 'c'), sized(0xc6, 4, 3, 'a', 'b', 'c'),
		{0x07}, {0x90}, {0x80}, {0xd4, 0x00, 'a'}, {0xc3},
	}
	ts8 := binary.BigEndian.AppendUint64(nil, 999_999_999<<34|1_700_000_000)
	ts12 := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, 5), 1<<40)
	times := [][]byte{
		{0xc0},
		{0xd6, 0xff, 0x65, 0x00, 0x00, 0x00},
		append([]byte{0xd7, 0xff}, ts8...),
		append([]byte{0xc7, 12, 0xff}, ts12...),
		append([]byte{0xc7, 12, 0xff}, binary.BigEndian.AppendUint64([]byte{0, 0, 0, 1}, 1<<63)...), // before year 1
		append([]byte{0xd7, 0xff}, binary.BigEndian.AppendUint64(nil, 0x3fffffff<<34|5)...),         // nsec above 1e9
		append([]byte{0xc7, 12, 0xff}, binary.BigEndian.AppendUint32(nil, 0xffffffff)...),           // 12-byte form cut
		{0xc7, 4, 0xff, 0x65, 0, 0, 0}, sized(0xc8, 2, 8, append([]byte{0xff}, ts8...)...),
		sized(0xc9, 4, 12, append([]byte{0xff}, ts12...)...),
		{0xd6, 13, 0x65, 0, 0, 0}, {0xd6, 0x05, 0x65, 0, 0, 0}, {0xd4, 0xff, 0x01}, {0xd5, 0xff, 0, 1},
		append([]byte{0xd8, 0xff}, make([]byte, 16)...), {0xc7, 0, 0xff}, {0xc7, 12, 0xff, 0x01},
		{0x92, 0x01, 0x02}, {0x92, 0xc0, 0xc0}, {0x92, 0xd0, 0xff, 0xd2, 0xc4, 0x65, 0x36, 0x00}, {0x92, 0x01, 0xa1, '2'},
		{0x92, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x01}, {0x93, 0x01, 0x02, 0x03}, {0x91, 0x01}, {0x90},
		fixstr("2025-01-02T03:04:05.6+07:00"), fixstr("2025-01-02T03:04:05Z"), fixstr("2025-01-02"), fixstr(""),
		sized(0xd9, 1, 20, []byte("2025-01-02T03:04:05Z")...), sized(0xc4, 1, 20, []byte("2025-01-02T03:04:05Z")...),
		{0x01}, {0xc2}, {0x80},
	}
	metas := [][]byte{
		{0xc0}, {0x80}, {0xde, 0, 0}, {0xdf, 0, 0, 0, 0},
		rawMap(fixstr("trace"), fixstr("abc"), fixstr("tenant"), fixstr("t1")),
		rawMap(fixstr("a"), fixstr("1"), fixstr("a"), fixstr("2")),
		rawMap(sized(0xc4, 1, 1, 'b'), sized(0xd9, 1, 1, 'x'), []byte{0xc0}, []byte{0xc0}),
		sized(0xde, 2, 1, append(fixstr("k"), fixstr("v")...)...),
		rawMap(fixstr("a"), []byte{0x01}), rawMap([]byte{0x01}, fixstr("a")), rawMap(fixstr("a"), rawMap()),
		{0x90}, fixstr("m"),
		// An ext header in front of the map: the library skips it.
		{0xd4, 0x00, 0x80}, {0xc7, 0x01, 0x00, 0x80}, {0xd5, 0x00, 0x80, 0xc0},
		append([]byte{0xd5, 0x00, 0x81}, fixstr("x")...), {0xd4, 0x00, 0xc0}, {0xd4, 0x00, 0x01},
	}
	valid := mustEncode(t, validEnvelope(t))
	values := [][]byte{
		valid, valid[:len(valid)/2], append(slices.Clone(valid), 0x00), {}, {0xc0}, {0x80}, envelopeWith("", nil),
		// Values that once made the decoder allocate what they declared.
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0x81, 0xa1, 'x', 0xdb, 0xb3, 0x37, 0x73, 0xe3, 'x'},
		mustMarshal(t, map[string]any{"v": 2, "kind": "k", "id": "i", "args": msgpack.RawMessage{0x80},
			"enqueued_at": "2025-01-02T03:04:05.6+07:00", "x": []any{1, map[string]any{"y": nil}}}),
		mustMarshal(t, map[string]any{"v": 1, "kind": 7, "id": "i", "args": msgpack.RawMessage{0x80}}),
	}
	for _, key := range []string{"v", "attempt"} {
		for _, b := range ints {
			values = append(values, envelopeWith(key, b))
		}
	}
	for _, key := range []string{"kind", "id"} {
		for _, b := range strs {
			values = append(values, envelopeWith(key, b))
		}
	}
	for _, b := range times {
		values = append(values, envelopeWith("enqueued_at", b))
	}
	for _, b := range metas {
		values = append(values, envelopeWith("meta", b))
	}
	for _, key := range []string{"v", "kind", "id", "args", "enqueued_at", "attempt"} {
		values = append(values, envelopeWith(key, nil))
	}
	values = append(values,
		// Field names in other encodings, and unknown fields of every type.
		rawMap(sized(0xd9, 1, 1, 'v'), []byte{0x01}, sized(0xc4, 1, 4, []byte("kind")...), fixstr("k"),
			sized(0xda, 2, 2, []byte("id")...), fixstr("i"), sized(0xdb, 4, 4, []byte("args")...), []byte{0xc0}),
		envelopeWith("", nil, []byte{0xc0}, []byte{0x01}),
		envelopeWith("", nil, []byte{0x01}, []byte{0x01}),
		envelopeWith("", nil, fixstr("x"), []byte{0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
		envelopeWith("", nil, fixstr("x"), []byte{0xc9, 0, 0, 0, 1, 0x05, 0x00}),
		envelopeWith("", nil, fixstr("x"), []byte{0x92, 0x91, 0x80, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0}),
		envelopeWith("", nil, fixstr("x"), []byte{0xdd, 0, 0, 0, 1, 0xca, 0, 0, 0, 0}),
		// Repeated fields: the last one counts.
		envelopeWith("", nil, fixstr("kind"), fixstr("")),
		envelopeWith("", nil, fixstr("kind"), fixstr("k2"), fixstr("args"), []byte{0xc0}),
		envelopeWith("", nil, fixstr("meta"), rawMap(fixstr("a"), fixstr("b")), fixstr("meta"), []byte{0xc0}),
		envelopeWith("meta", rawMap(fixstr("a"), fixstr("b")), fixstr("v"), []byte{0x00}),
		envelopeWith("", nil, fixstr("enqueued_at"), []byte{0xc0}),
		// Args of every kind of value.
		envelopeWith("args", []byte{0xc0}), envelopeWith("args", []byte{0x90}), envelopeWith("args", fixstr("s")),
		envelopeWith("args", []byte{0xd6, 0xff, 0, 0, 0, 1}), envelopeWith("args", []byte{0xc1}),
		// Map headers of every size.
		append([]byte{0xde, 0, 6}, envelopeWith("", nil)[1:]...),
		append([]byte{0xdf, 0, 0, 0, 6}, envelopeWith("", nil)[1:]...),
		append([]byte{0xde, 0, 7}, envelopeWith("", nil)[1:]...),
	)
	later := mustMarshal(t, map[string]any{
		"v": 2, "kind": "envelope_test", "id": "job-1", "args": msgpack.RawMessage{0x80},
		"enqueued_at": time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), "attempt": 1, "meta": map[string]string{"k": "v"},
		"priority": 5, "deadline": time.Unix(1<<40, 1), "trace": map[string]any{"spans": []any{1, "two", 3.0, nil, []byte{1}}},
	})
	values = append(values, later)
	for _, meta := range []map[string]string{nil, {"trace": "abc"}} {
		env := validEnvelope(t)
		env.Metadata = meta
		for _, at := range []time.Time{{}, time.Unix(1, 0), time.Unix(1<<33, 5), time.Unix(-1, 0)} {
			env.EnqueuedAt = at
			values = append(values, mustEncode(t, env))
		}
	}
	return values
}

// FuzzDecodeEnvelopeMatchesReference: the hand-written decoder accepts and
// refuses exactly what the msgpack library accepted and refused, with the
// same values. Its seeds, every encoding of every field, run with each
// go test.
//
//	go test -run - -fuzz FuzzDecodeEnvelopeMatchesReference -fuzztime 90s ./internal/envelope
func FuzzDecodeEnvelopeMatchesReference(f *testing.F) {
	for _, b := range envelopeEncodings(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := referenceDecodeEnvelope(b)
		got, err := Decode(b)
		switch {
		case err != nil && !errors.Is(err, ErrUndecodable):
			t.Fatalf("% x: error %v does not wrap ErrUndecodable", b, err)
		case err != nil && wantErr != nil:
			return
		case err != nil:
			t.Fatalf("% x: refused (%v), but the library decodes %+v", b, err, want)
		case wantErr != nil:
			t.Fatalf("% x: decoded %+v, but the library refuses it (%v)", b, got, wantErr)
		case !sameEnvelope(got, want) || (got.Metadata == nil) != (want.Metadata == nil):
			t.Fatalf("% x: decoded\n%+v\nthe library decodes\n%+v", b, got, want)
		case got.EnqueuedAt.Location() != time.UTC:
			t.Fatalf("% x: EnqueuedAt %v is not in UTC", b, got.EnqueuedAt)
		}
	})
}

// TestDecodeEnvelopeViewAllocatesNothing: the per-job path reads an
// envelope without metadata without allocating.
func TestDecodeEnvelopeViewAllocatesNothing(t *testing.T) {
	env := validEnvelope(t)
	env.Metadata = nil
	value := mustEncode(t, env)
	var v View
	allocs := testing.AllocsPerRun(100, func() {
		if err := DecodeView(value, &v); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeView allocated %v times per envelope, want 0", allocs)
	}
	if string(v.Kind) != env.Kind || string(v.ID) != env.ID || !bytes.Equal(v.Args, env.Args) ||
		!v.EnqueuedAt.Equal(env.EnqueuedAt) || v.Version != env.Version || v.Metadata != nil {
		t.Errorf("decoded %+v from %+v", v, env)
	}
}

func benchmarkDecodeEnvelope(b *testing.B, decode func([]byte) error) {
	for _, c := range []struct {
		name string
		meta map[string]string
	}{{"without-meta", nil}, {"with-meta", map[string]string{"trace": "abc", "tenant": "t1"}}} {
		env := validEnvelope(b)
		env.Metadata = c.meta
		value := mustEncode(b, env)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				if err := decode(value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeEnvelopeView(b *testing.B) {
	var v View
	benchmarkDecodeEnvelope(b, func(value []byte) error { return DecodeView(value, &v) })
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	benchmarkDecodeEnvelope(b, func(value []byte) error { _, err := Decode(value); return err })
}

// BenchmarkDecodeEnvelopeReference is the library-based decoder, for comparison.
func BenchmarkDecodeEnvelopeReference(b *testing.B) {
	benchmarkDecodeEnvelope(b, func(value []byte) error { _, err := referenceDecodeEnvelope(value); return err })
}

func TestDerivedIDIsStableSortableAndSeedDependent(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := DerivedID(at, "report\x00tick"), DerivedID(at, "report\x00tick")
	if a != b || len(a) != 26 {
		t.Fatalf("DerivedID twice = %q, %q; want one 26-character id", a, b)
	}
	if c := DerivedID(at, "other"); c == a {
		t.Errorf("different seeds gave the same id %q", a)
	}
	if later := DerivedID(at.Add(time.Millisecond), "report\x00tick"); later <= a {
		t.Errorf("id a millisecond later %q does not sort after %q", later, a)
	}
	if n := NewID(at); n[:10] != a[:10] {
		t.Errorf("NewID %q and DerivedID %q of one instant differ in their time part", n, a)
	}
}
