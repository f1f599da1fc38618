package jobstest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/jobs/jobstest"
	"github.com/ordo-go/ordo/supervision"
)

// DebitArgs debits an account; its worker keeps the balance in KeyState.
type DebitArgs struct {
	Account string `msgpack:"account"`
	Cents   int64  `msgpack:"cents"`
}

func (DebitArgs) Kind() string { return "debit" }

func (a DebitArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Account} }

type balance struct {
	loaded bool
	cents  int64
	loads  int
}

type DebitWorker struct {
	jobs.WorkerDefaults[DebitArgs]
	opening int64
}

func (w *DebitWorker) Work(ctx context.Context, job *jobs.Job[DebitArgs]) error {
	b := jobs.KeyState[balance](ctx)
	if !b.loaded {
		b.cents, b.loaded = w.opening, true
		b.loads++
	}
	if b.cents < job.Args.Cents {
		return jobs.Permanent(fmt.Errorf("account %s: insufficient funds", job.Args.Account))
	}
	b.cents -= job.Args.Cents
	return nil
}

func TestWorkKeepsKeyStateAcrossJobsOfOneKeyContext(t *testing.T) {
	w := &DebitWorker{opening: 1000}
	ctx := jobstest.KeyContext(context.Background(), "acct-1")
	for i, c := range []struct {
		cents     int64
		permanent bool
	}{{600, false}, {300, false}, {200, true}, {100, false}} {
		err := jobstest.Work(ctx, w, DebitArgs{Account: "acct-1", Cents: c.cents})
		if got := errors.As(err, new(*supervision.PermanentError)); got != c.permanent || (err != nil) != c.permanent {
			t.Fatalf("debit %d (%d cents): err %v, want permanent=%v", i, c.cents, err, c.permanent)
		}
	}
	// A fresh context is a passivated key: the state is loaded again.
	if err := jobstest.Work(context.Background(), w, DebitArgs{Account: "acct-1", Cents: 1000}); err != nil {
		t.Errorf("first debit of a fresh key: %v", err)
	}
}

type slowArgs struct{}

func (slowArgs) Kind() string { return "slow" }

type slowWorker struct{ jobs.WorkerDefaults[slowArgs] }

func (slowWorker) Timeout() time.Duration { return 10 * time.Millisecond }
func (slowWorker) Work(ctx context.Context, _ *jobs.Job[slowArgs]) error {
	<-ctx.Done()
	return ctx.Err()
}

type panicArgs struct{}

func (panicArgs) Kind() string { return "panic" }

type unencodable struct {
	F func() `msgpack:"f"`
}

func (unencodable) Kind() string { return "unencodable" }

func TestWorkBehavesLikeTheServer(t *testing.T) {
	ctx := context.Background()
	if err := jobstest.Work[slowArgs](ctx, slowWorker{}, slowArgs{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("worker with a 10ms Timeout: err %v, want context.DeadlineExceeded", err)
	}
	err := jobstest.Work(ctx, jobs.WorkFunc(func(context.Context, *jobs.Job[panicArgs]) error { panic("boom") }), panicArgs{})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking worker: err %v, want one naming the panic", err)
	}
	err = jobstest.Work(ctx, jobs.WorkFunc(func(context.Context, *jobs.Job[unencodable]) error { return nil }), unencodable{F: func() {}})
	if err == nil {
		t.Error("args that msgpack cannot encode ran without an error")
	}
	job := jobstest.NewJob(DebitArgs{Account: "acct-9", Cents: 1})
	job.Attempt = 3
	err = jobstest.WorkJob(ctx, jobs.WorkFunc(func(_ context.Context, j *jobs.Job[DebitArgs]) error {
		if j.Attempt != 3 || string(j.Key) != "acct-9" || j.Kind != "debit" || j.ID == "" {
			return fmt.Errorf("job %+v", j)
		}
		return nil
	}), job)
	if err != nil {
		t.Error(err)
	}
}

func TestClientCapturesValidJobsOnly(t *testing.T) {
	ctx := context.Background()
	c := jobstest.NewClient("jobs")
	info, err := c.Enqueue(ctx, DebitArgs{Account: "a", Cents: 5}, jobs.WithMetadata(map[string]string{"by": "test"}))
	if err != nil || info.Key != "a" || info.Topic != "jobs" || info.Kind != "debit" {
		t.Fatalf("Enqueue: %+v, %v", info, err)
	}
	if _, err := c.Enqueue(ctx, DebitArgs{Cents: 5}); !errors.Is(err, jobs.ErrInvalidEnqueue) {
		t.Errorf("args with an empty partition value: err %v, want ErrInvalidEnqueue", err)
	}
	if _, err := c.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: DebitArgs{Account: "b"}}, {Args: nil}}); !errors.Is(err, jobs.ErrInvalidEnqueue) {
		t.Errorf("EnqueueMany with a nil job: err %v, want ErrInvalidEnqueue", err)
	}
	if _, err := c.EnqueueMany(ctx, []jobs.EnqueueParams{{Args: DebitArgs{Account: "b", Cents: 1}}, {Args: slowArgs{}, Opts: []jobs.EnqueueOption{jobs.WithTopic("slow")}}}); err != nil {
		t.Fatal(err)
	}
	var asyncErr error
	c.EnqueueAsync(ctx, DebitArgs{Account: "c", Cents: 2}, func(_ jobs.JobInfo, err error) { asyncErr = err })
	if asyncErr != nil {
		t.Fatal(asyncErr)
	}

	all := c.Jobs()
	if len(all) != 4 {
		t.Fatalf("captured %d jobs, want 4", len(all))
	}
	if all[2].Info.Topic != "slow" {
		t.Errorf("WithTopic job went to %q", all[2].Info.Topic)
	}
	if string(all[0].Record.Key) != "a" {
		t.Errorf("record key %q, want %q", all[0].Record.Key, "a")
	}
	env, err := envelope.Decode(all[0].Record.Value)
	if err != nil || env.Metadata["by"] != "test" {
		t.Errorf("envelope %+v, %v; want metadata by=test", env, err)
	}
	debits := jobstest.JobsOf[DebitArgs](c)
	if len(debits) != 3 || debits[0].Account != "a" || debits[1].Account != "b" || debits[2].Account != "c" {
		t.Errorf("JobsOf[DebitArgs] = %+v", debits)
	}
	c.Reset()
	if n := len(c.Jobs()); n != 0 {
		t.Errorf("%d jobs after Reset", n)
	}
}

func TestWorkBatchBehavesLikeTheServer(t *testing.T) {
	ctx := context.Background()
	var got []int64
	err := jobstest.WorkBatch(ctx, jobs.WorkBatchFunc(func(_ context.Context, batch []*jobs.Job[DebitArgs]) error {
		for i, j := range batch {
			if j.Attempt != 1 || j.Kind != "debit" || string(j.Key) != "acct-1" || j.Offset != int64(i) {
				return fmt.Errorf("job %d: %+v", i, j)
			}
			got = append(got, j.Args.Cents)
		}
		return jobs.BatchErrors{1: errors.New("row refused")}
	}), []DebitArgs{{Account: "acct-1", Cents: 1}, {Account: "acct-1", Cents: 2}, {Account: "acct-1", Cents: 3}})
	var be jobs.BatchErrors
	if !errors.As(err, &be) || len(be) != 1 || be[1] == nil {
		t.Errorf("a batch naming job 1: err %v, want the BatchErrors as returned", err)
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("the batch held %v, want [1 2 3] in order", got)
	}
	err = jobstest.WorkBatch(ctx, jobs.WorkBatchFunc(func(context.Context, []*jobs.Job[panicArgs]) error { panic("boom") }), []panicArgs{{}})
	var pe *jobs.PanicError
	if !errors.As(err, &pe) {
		t.Errorf("a panicking batch worker: err %v, want a *jobs.PanicError", err)
	}
	if err := jobstest.WorkBatch(ctx, jobs.WorkBatchFunc(func(context.Context, []*jobs.Job[panicArgs]) error { return nil }), nil); err == nil {
		t.Error("WorkBatch with no jobs returned no error")
	}
}
