package jobs

import (
	"bytes"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
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
		Version:    EnvelopeVersion,
		Kind:       "envelope_test",
		ID:         newJobID(time.Now()),
		Args:       args,
		EnqueuedAt: time.Date(2025, 11, 25, 17, 30, 0, 123456789, time.UTC),
		Attempt:    0,
		Metadata:   map[string]string{"trace": "abc", "tenant": "t1"},
	}
}

func mustEncode(t testing.TB, env *Envelope) []byte {
	t.Helper()
	b, err := EncodeEnvelope(env)
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
		got, err := DecodeEnvelope(mustEncode(t, want))
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
	got, err := DecodeEnvelope(v2)
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
		_, err := DecodeEnvelope(c.value)
		if !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: DecodeEnvelope returned %v, want an error wrapping ErrUndecodable", c.name, err)
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
			if _, err := DecodeEnvelope(v); !errors.Is(err, ErrUndecodable) || !strings.Contains(err.Error(), "truncated") {
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
		if env, err := DecodeEnvelope(valid[:n]); !errors.Is(err, ErrUndecodable) {
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
		if _, err := EncodeEnvelope(env); !errors.Is(err, ErrInvalidEnvelope) {
			t.Errorf("%s: EncodeEnvelope returned %v, want ErrInvalidEnvelope", c.name, err)
		}
	}
	if _, err := EncodeEnvelope(nil); !errors.Is(err, ErrInvalidEnvelope) {
		t.Errorf("nil: EncodeEnvelope returned %v, want ErrInvalidEnvelope", err)
	}
}

func TestJobIDsAreUniqueAndSortByTime(t *testing.T) {
	const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	now := time.Now()
	seen := make(map[string]bool, 100_000)
	for range 100_000 {
		id := newJobID(now)
		if len(id) != 26 || strings.Trim(id, crockford) != "" {
			t.Fatalf("id %q is not 26 Crockford base32 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q repeated", id)
		}
		seen[id] = true
	}
	for _, d := range []time.Duration{time.Millisecond, time.Second, 1000 * time.Hour} {
		if a, b := newJobID(now), newJobID(now.Add(d)); a >= b {
			t.Errorf("id %s of %v does not sort before %s of %v later", a, now, b, d)
		}
	}
	if got := newJobID(time.UnixMilli(0))[:10]; got != "0000000000" {
		t.Errorf("the epoch's time part is %q", got)
	}
}

// FuzzDecodeEnvelope: no value, however broken, panics the decoder (a record
// from Kafka is untrusted input), and whatever decodes survives a round trip
// unchanged.
//
//	go test -run - -fuzz FuzzDecodeEnvelope -fuzztime 20s ./jobs
func FuzzDecodeEnvelope(f *testing.F) {
	valid := mustEncode(f, validEnvelope(f))
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(append(slices.Clone(valid), 0x00))
	f.Add([]byte{})
	f.Add([]byte{0xc0})
	f.Add([]byte{0x80})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa1, 'x', 0xdb, 0xb3, 0x37, 0x73, 0xe3, 'x'})
	f.Add(mustMarshal(f, map[string]any{"v": 2, "kind": "k", "id": "i", "args": msgpack.RawMessage{0x80},
		"enqueued_at": "2025-01-02T03:04:05.6+07:00", "x": []any{1, map[string]any{"y": nil}}}))
	f.Add(mustMarshal(f, map[string]any{"v": 1, "kind": 7, "id": "i", "args": msgpack.RawMessage{0x80}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		again, err := EncodeEnvelope(env)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", env, err)
		}
		back, err := DecodeEnvelope(again)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", env, err)
		}
		if !sameEnvelope(env, back) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, back)
		}
	})
}
