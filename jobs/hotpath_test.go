package jobs

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/kafka"
)

// BenchmarkHotPath measures what ordo itself costs per job, without a broker:
// records come from memory, already copied out of a fetch response (package
// kafka adds one allocation per record for that copy), and run through the
// runtime and the executor to a no-op worker, over 1,000 keys. What is left
// per job beyond the args' own decoding is listed in the note of the runtime
// v2 issue:
//
//	go test -run - -bench HotPath -benchmem ./jobs
func BenchmarkHotPath(b *testing.B) {
	// status=on counts each job for the status reports, as a server does
	// by default; status=off is Config.DisableStatus.
	for _, status := range []bool{false, true} {
		b.Run("status="+map[bool]string{false: "off", true: "on"}[status], func(b *testing.B) { benchmarkHotPath(b, status, nil) })
	}
}

// BenchmarkHotPathMiddleware is BenchmarkHotPath/status=off with one
// Config.Middleware that passes the run through: what the middleware path
// costs a job (its RawJob, the copies of its headers and args, the chain),
// which the built-in tracing and metrics would pay if they were middleware.
//
//	go test -run - -bench 'HotPath(/status=off|Middleware)' -benchmem ./jobs
func BenchmarkHotPathMiddleware(b *testing.B) {
	benchmarkHotPath(b, false, []Middleware{MiddlewareDefaults{}})
}

func benchmarkHotPath(b *testing.B, status bool, mws []Middleware) {
	var done atomic.Int64
	n, all := int64(b.N), make(chan struct{})
	ws := NewWorkers()
	if err := AddWorker(ws, WorkFunc(func(ctx context.Context, j *Job[hotArgs]) error {
		if done.Add(1) == n {
			close(all)
		}
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	cfg := executor.Config{Workers: ws, MaxAttempts: 4, Log: slog.New(slog.DiscardHandler), Middleware: workMiddleware(mws, ws)}
	if status {
		cfg.Tally = newTally(ws)
	}
	rt, err := actors.NewRuntime(actors.Config{Handler: executor.New(cfg).Handle, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	src := newHotSource(b, 1000)
	b.ReportAllocs()
	b.ResetTimer()
	if err := rt.Assign(actors.Assignment{Topic: "t", Source: src, Generation: hotGeneration{}}); err != nil {
		b.Fatal(err)
	}
	src.release(b.N)
	<-all
	b.StopTimer()
	_ = rt.Shutdown()
}

type hotArgs struct {
	Key string `msgpack:"key"`
	N   int    `msgpack:"n"`
}

func (hotArgs) Kind() string { return "hot" }

// hotSource hands out records of keys 0..keys-1 in turn, as many as released.
type hotSource struct {
	values  [][]byte
	keys    [][]byte
	headers []kafka.Header
	next    int64
	allowed atomic.Int64
}

func newHotSource(b *testing.B, keys int) *hotSource {
	s := &hotSource{headers: []kafka.Header{{Key: HeaderKind, Value: []byte("hot")}, {Key: HeaderJobID, Value: []byte("01JOBID")}}}
	for k := range keys {
		key := "key-" + strconv.Itoa(k)
		args, err := msgpack.Marshal(hotArgs{Key: key, N: k})
		if err != nil {
			b.Fatal(err)
		}
		v, err := envelope.Encode(&envelope.Envelope{Version: envelope.Version, Kind: "hot", ID: envelope.NewID(time.Now()), Args: args,
			EnqueuedAt: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		s.values = append(s.values, v)
		s.keys = append(s.keys, []byte(key))
	}
	return s
}

func (s *hotSource) release(n int) { s.allowed.Store(int64(n)) }

func (s *hotSource) Fetch(ctx context.Context, dst []kafka.Record, max int) ([]kafka.Record, int64, error) {
	for n := 0; n < max && s.next < s.allowed.Load(); n++ {
		k := int(s.next) % len(s.keys)
		dst = append(dst, kafka.Record{Topic: "t", Offset: s.next, Key: s.keys[k], Value: s.values[k], Headers: s.headers})
		s.next++
	}
	if len(dst) == 0 {
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	return dst, s.next, nil
}

type hotGeneration struct{}

func (hotGeneration) GenerationID() int32                           { return 1 }
func (hotGeneration) Commit(context.Context, ...kafka.Offset) error { return nil }

// BenchmarkStatusTally is the whole per-job work of the status reports: one
// count of a finished job, from both cores at once as the handler pool does.
// Against BenchmarkHotPath/status=off, run in the same command, it is the
// share of a job's cost the reports add (the report itself is built once per
// StatusInterval, 5 s, from Stats):
//
//	go test -run - -bench 'HotPath/status=off|StatusTally' -count 6 ./jobs
func BenchmarkStatusTally(b *testing.B) {
	ws := NewWorkers()
	if err := AddWorker(ws, WorkFunc(func(context.Context, *Job[hotArgs]) error { return nil })); err != nil {
		b.Fatal(err)
	}
	t := newTally(ws)
	kind := hotArgs{}.Kind()
	var goroutines atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine counts records of its own partition, as the
		// pool's goroutines count different keys' records: offsets
		// that only sometimes share a stripe.
		r := &kafka.Record{Partition: int(goroutines.Add(1))}
		for pb.Next() {
			r.Offset++
			t.Ran(r, kind, nil)
		}
	})
}

// newTally counts the jobs of the kinds ws has workers for, as a server
// whose status reports are on does.
func newTally(ws *Workers) *status.Tally { return status.NewTally(executor.Kinds(ws)) }
