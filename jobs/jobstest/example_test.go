package jobstest_test

import (
	"context"
	"fmt"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/jobs/jobstest"
)

// SendReceiptArgs is the job that PlaceOrder enqueues.
type SendReceiptArgs struct {
	OrderID string `msgpack:"order_id"`
}

func (SendReceiptArgs) Kind() string { return "send_receipt" }

// PlaceOrder is code under test: it takes a jobs.Enqueuer, so production
// passes a *jobs.Client and tests a *jobstest.Client.
func PlaceOrder(ctx context.Context, enqueuer jobs.Enqueuer, orderID string) error {
	_, err := enqueuer.Enqueue(ctx, SendReceiptArgs{OrderID: orderID})
	return err
}

// Assert what code enqueued, then run the worker on it: no Kafka involved.
func Example() {
	ctx := context.Background()
	client := jobstest.NewClient("jobs")
	if err := PlaceOrder(ctx, client, "o-1"); err != nil {
		panic(err)
	}
	receipts := jobstest.JobsOf[SendReceiptArgs](client)
	fmt.Println("enqueued:", receipts)

	worker := jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SendReceiptArgs]) error {
		fmt.Println("sending receipt for", job.Args.OrderID, "attempt", job.Attempt)
		return nil
	})
	fmt.Println("error:", jobstest.Work(ctx, worker, receipts[0]))
	// Output:
	// enqueued: [{o-1}]
	// sending receipt for o-1 attempt 1
	// error: <nil>
}

// KeyContext runs several jobs as one key's consecutive jobs, so per-key
// state carries over as it does inside a Server.
func ExampleKeyContext() {
	w := &DebitWorker{opening: 1000}
	ctx := jobstest.KeyContext(context.Background(), "acct-1")
	fmt.Println(jobstest.Work(ctx, w, DebitArgs{Account: "acct-1", Cents: 700}))
	fmt.Println(jobstest.Work(ctx, w, DebitArgs{Account: "acct-1", Cents: 700}))
	// Output:
	// <nil>
	// permanent: account acct-1: insufficient funds
}

// The README's jobstest section, kept here so that it compiles and stays true.
func Example_readme() {
	ctx := context.Background()

	// Run a worker synchronously, as the Server would (msgpack round trip of the
	// args, the worker's Timeout, panics as errors, KeyState):
	err := jobstest.Work(ctx, &DebitWorker{opening: 1000}, DebitArgs{Account: "a", Cents: 500})

	// Several jobs of one key share its KeyState:
	w := &DebitWorker{opening: 1000}
	kctx := jobstest.KeyContext(ctx, "acct-1")
	_ = jobstest.Work(kctx, w, DebitArgs{Account: "acct-1", Cents: 700})
	second := jobstest.Work(kctx, w, DebitArgs{Account: "acct-1", Cents: 700}) // sees the first's state

	// Capture what code enqueued: take a jobs.Enqueuer, pass a jobstest.Client.
	c := jobstest.NewClient("jobs")
	_ = PlaceOrder(ctx, c, "o-1")
	receipts := jobstest.JobsOf[SendReceiptArgs](c)

	fmt.Println(err, second, receipts)
	// Output: <nil> permanent: account acct-1: insufficient funds [{o-1}]
}
