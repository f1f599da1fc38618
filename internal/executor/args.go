package executor

import (
	"bytes"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// argsDecoder decodes job args: msgpack.Unmarshal allocates a reader per
// call; a pooled decoder with a reader of its own does not.
type argsDecoder struct {
	dec *msgpack.Decoder
	r   bytes.Reader
}

var argsDecoders = sync.Pool{New: func() any { return &argsDecoder{dec: msgpack.NewDecoder(nil)} }}

// DecodeArgs decodes a job's args b into v as msgpack.Unmarshal does,
// without its allocation per call.
func DecodeArgs(b []byte, v any) error {
	d := argsDecoders.Get().(*argsDecoder)
	d.r.Reset(b)
	d.dec.Reset(&d.r)
	d.dec.UsePreallocateValues(true)
	err := d.dec.Decode(v)
	d.dec.Reset(nil) // the pool must not keep the record's bytes alive
	d.r.Reset(nil)
	argsDecoders.Put(d)
	return err
}
