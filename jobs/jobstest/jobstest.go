// Package jobstest helps unit-test code that uses ordo, without Kafka: run a
// worker on a job synchronously, as a Server would (with per-key state and
// the worker's timeout), and capture what code enqueues.
//
//	func TestChargeWorker(t *testing.T) {
//		err := jobstest.Work(ctx, &ChargeWorker{}, ChargeArgs{Account: "a", Cents: 500})
//		...
//	}
package jobstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// KeyContext returns a context that carries the per-key state (jobs.KeyState)
// of one key. Pass it to several Work calls to run them as consecutive jobs
// of that key on one process: each sees what the earlier ones left. A fresh
// KeyContext is a key whose actor was passivated: its state is empty.
//
//	ctx := jobstest.KeyContext(context.Background(), "acct-1")
//	_ = jobstest.Work(ctx, w, ChargeArgs{Account: "acct-1", Cents: 100})
//	_ = jobstest.Work(ctx, w, ChargeArgs{Account: "acct-1", Cents: 200}) // sees the first's state
func KeyContext(ctx context.Context, key string) context.Context {
	return actors.NewKeyContext(ctx, key)
}

// NewJob returns the job a worker would get for args on its first run: a
// fresh ID, Kind, Attempt 1, EnqueuedAt now, Topic "jobstest", and Key from
// the args' Partitioning when they have one. Change its fields to test other
// cases (a retry, metadata) and run it with WorkJob.
func NewJob[T jobs.JobArgs](args T) *jobs.Job[T] {
	job := &jobs.Job[T]{
		ID: newID(), Kind: args.Kind(), Args: args, EnqueuedAt: time.Now().UTC(), Attempt: 1,
		Topic: "jobstest", Offset: -1,
	}
	if pa, ok := any(args).(jobs.PartitionedArgs); ok {
		if p := pa.Partitioning(); p.Type == jobs.KeyTypeKey {
			job.Key = []byte(p.Value)
		}
	}
	return job
}

// Work runs w on NewJob(args) and returns its error. See WorkJob.
func Work[T jobs.JobArgs](ctx context.Context, w jobs.Worker[T], args T) error {
	return WorkJob(ctx, w, NewJob(args))
}

// WorkJob runs w on job synchronously, through the same executor a Server
// uses: the job goes through the msgpack envelope encoding first (so a field
// the worker needs but that does not survive encoding fails here, not in
// production), the worker's Timeout bounds ctx, a panic comes back as a
// *jobs.PanicError, and jobs.KeyState works. Unless ctx comes from
// KeyContext, the job runs as the first of a key whose state is empty.
//
// The error is what Work returned: test it with errors.Is, or errors.As
// with *jobs.PermanentError for jobs.Permanent.
func WorkJob[T jobs.JobArgs](ctx context.Context, w jobs.Worker[T], job *jobs.Job[T]) error {
	r, err := record(job)
	if err != nil {
		return err
	}
	workers := jobs.NewWorkers()
	if err := jobs.AddWorker(workers, w); err != nil {
		return fmt.Errorf("jobstest: %w", err)
	}
	if actors.KeyStateOf(ctx) == nil {
		ctx = KeyContext(ctx, string(job.Key))
	}
	return executor.Work(ctx, workers, r, 1)
}

// WorkBatch runs w on one batch of the jobs of args, in order, as a Server
// would run consecutive jobs of one key: through the same executor, each
// job through the envelope encoding, with the worker's Timeout bounding the
// call and a panic coming back as a *jobs.PanicError. It returns what
// WorkBatch returned: a jobs.BatchErrors comes back as is. Unless ctx comes
// from KeyContext, the batch runs as the first of a key whose state is
// empty.
//
//	err := jobstest.WorkBatch(ctx, &IndexWorker{}, []IndexArgs{{Doc: a}, {Doc: b}})
func WorkBatch[T jobs.JobArgs](ctx context.Context, w jobs.BatchWorker[T], args []T) error {
	if len(args) == 0 {
		return fmt.Errorf("jobstest: WorkBatch: no jobs")
	}
	workers := jobs.NewWorkers()
	if err := jobs.AddBatchWorker(workers, w); err != nil {
		return fmt.Errorf("jobstest: %w", err)
	}
	recs := make([]*kafka.Record, len(args))
	for i, a := range args {
		r, err := record(NewJob(a))
		if err != nil {
			return err
		}
		r.Offset = int64(i)
		recs[i] = r
	}
	if actors.KeyStateOf(ctx) == nil {
		ctx = KeyContext(ctx, string(recs[0].Key))
	}
	return executor.WorkBatch(ctx, workers, recs)
}

// record encodes job as the record a Server would read.
func record[T jobs.JobArgs](job *jobs.Job[T]) (*kafka.Record, error) {
	raw, err := msgpack.Marshal(job.Args)
	if err != nil {
		return nil, fmt.Errorf("jobstest: args of kind %q do not encode: %w", job.Kind, err)
	}
	kind, id := job.Kind, job.ID
	if kind == "" {
		kind = job.Args.Kind()
	}
	if id == "" {
		id = newID()
	}
	value, err := envelope.Encode(&envelope.Envelope{
		Version: envelope.Version, Kind: kind, ID: id, Args: raw,
		EnqueuedAt: job.EnqueuedAt, Attempt: max(job.Attempt-1, 0), Metadata: job.Metadata,
	})
	if err != nil {
		return nil, fmt.Errorf("jobstest: %w", err)
	}
	return &kafka.Record{Topic: job.Topic, Partition: job.Partition, Offset: job.Offset, Key: job.Key, Value: value,
		Headers: []kafka.Header{{Key: jobs.HeaderKind, Value: []byte(kind)}}}, nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "jobstest-" + hex.EncodeToString(b[:])
}
