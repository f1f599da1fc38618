package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
)

// ErrBadArgs is wrapped by JSONArgs' error for args that are not one JSON
// object.
var ErrBadArgs = errors.New("ops: args are not a JSON object")

// JSONArgs is a job given as its kind and its args in JSON, for operators
// and scripts: it encodes as the msgpack map a Go worker decodes, with JSON
// integers as integers and other numbers as floats.
type JSONArgs struct {
	kind string
	args map[string]any
}

// NewJSONArgs parses args, which must be one JSON object.
func NewJSONArgs(kind, args string) (*JSONArgs, error) {
	if kind == "" {
		return nil, errors.New("ops: the kind is empty")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(args)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadArgs, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one JSON value", ErrBadArgs)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: got %s", ErrBadArgs, jsonType(v))
	}
	return &JSONArgs{kind: kind, args: numbers(obj).(map[string]any)}, nil
}

// Kind is the job's kind.
func (a *JSONArgs) Kind() string { return a.kind }

// EncodeMsgpack writes the args as a msgpack map.
func (a *JSONArgs) EncodeMsgpack(enc *msgpack.Encoder) error {
	enc.SetSortMapKeys(true)
	return enc.Encode(a.args)
}

// numbers turns json.Numbers into int64 when they are integers, else
// float64, so msgpack writes numbers rather than strings.
func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
	}
	return v
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// ArgsJSON renders a job's msgpack args as indented JSON, for showing a
// payload; what does not decode is described instead.
func ArgsJSON(raw []byte) string {
	var v any
	if err := msgpack.Unmarshal(raw, &v); err != nil {
		return fmt.Sprintf("(%d bytes that are not msgpack: %v)", len(raw), err)
	}
	b, err := json.MarshalIndent(jsonable(v), "", "  ")
	if err != nil {
		return fmt.Sprintf("(%d bytes: %v)", len(raw), err)
	}
	return string(b)
}

// jsonable turns msgpack's map[any]any into maps JSON can encode.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
	case []byte:
		return fmt.Sprintf("(%d bytes)", len(v))
	}
	return v
}

// Payload renders a job record's value for a person: its args as JSON, or
// why the value is not a job envelope.
func Payload(value []byte) string {
	var v envelope.View
	if err := envelope.DecodeView(value, &v); err != nil {
		return fmt.Sprintf("(%d bytes, not a job envelope: %v)", len(value), err)
	}
	return ArgsJSON(v.Args)
}
