package jobstest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// Enqueued is one job a Client captured.
type Enqueued struct {
	// Args are the args as passed to Enqueue.
	Args jobs.JobArgs
	// Info is what Enqueue returned; Partition and Offset are -1.
	Info jobs.JobInfo
	// Record is the Kafka record a real Client would have sent.
	Record kafka.Message
}

// Client is a jobs.Enqueuer that keeps the jobs instead of sending them, so a
// test can assert what code under test enqueued. It validates each job as a
// real Client does (same errors, wrapping jobs.ErrInvalidEnqueue) and records
// only the valid ones. It is safe for concurrent use.
//
//	c := jobstest.NewClient("jobs")
//	_ = PlaceOrder(ctx, c, order) // takes a jobs.Enqueuer
//	receipts := jobstest.JobsOf[SendReceiptArgs](c)
type Client struct {
	topic string

	mu   sync.Mutex
	jobs []Enqueued
}

var _ jobs.Enqueuer = (*Client)(nil)

// NewClient returns a capturing client whose default topic is topic, like
// ClientConfig.Topic.
func NewClient(topic string) *Client { return &Client{topic: topic} }

// Enqueue records the job.
func (c *Client) Enqueue(_ context.Context, args jobs.JobArgs, opts ...jobs.EnqueueOption) (jobs.JobInfo, error) {
	msg, info, err := prepare(c.topic, args, opts)
	if err != nil {
		return jobs.JobInfo{}, err
	}
	c.mu.Lock()
	c.jobs = append(c.jobs, Enqueued{Args: args, Info: info, Record: msg})
	c.mu.Unlock()
	return info, nil
}

// EnqueueMany records the jobs, or none if any is invalid.
func (c *Client) EnqueueMany(_ context.Context, params []jobs.EnqueueParams) ([]jobs.JobInfo, error) {
	batch := make([]Enqueued, len(params))
	infos := make([]jobs.JobInfo, len(params))
	for i, p := range params {
		msg, info, err := prepare(c.topic, p.Args, p.Opts)
		if err != nil {
			return nil, err
		}
		batch[i], infos[i] = Enqueued{Args: p.Args, Info: info, Record: msg}, info
	}
	c.mu.Lock()
	c.jobs = append(c.jobs, batch...)
	c.mu.Unlock()
	return infos, nil
}

// EnqueueAsync records the job and calls done before returning.
func (c *Client) EnqueueAsync(ctx context.Context, args jobs.JobArgs, done func(jobs.JobInfo, error), opts ...jobs.EnqueueOption) {
	done(c.Enqueue(ctx, args, opts...))
}

// Jobs returns every job captured so far, in enqueue order.
func (c *Client) Jobs() []Enqueued {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Enqueued(nil), c.jobs...)
}

// Reset forgets the captured jobs.
func (c *Client) Reset() {
	c.mu.Lock()
	c.jobs = nil
	c.mu.Unlock()
}

// JobsOf returns the args of the captured jobs of type T, in enqueue order.
//
//	receipts := jobstest.JobsOf[SendReceiptArgs](c)
//	if len(receipts) != 1 || receipts[0].OrderID != "o-1" { ... }
func JobsOf[T jobs.JobArgs](c *Client) []T {
	var out []T
	for _, e := range c.Jobs() {
		if a, ok := e.Args.(T); ok {
			out = append(out, a)
		}
	}
	return out
}

// prepare builds the record jobs.Client.Enqueue would send, through the same
// code; a job to run later gets an id drawn without knowing its schedules
// topic's partitions.
func prepare(topic string, args jobs.JobArgs, opts []jobs.EnqueueOption) (kafka.Message, jobs.JobInfo, error) {
	o := enqueue.Collect(opts)
	msg, info, err := enqueue.Prepare(topic, args, &o, time.Now().UTC(), nil)
	if err != nil {
		return msg, jobs.JobInfo{}, fmt.Errorf("%w: %w", jobs.ErrInvalidEnqueue, err)
	}
	return msg, jobs.JobInfo(info), nil
}
