package enqueue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/kafka"
)

// Config configures a Client; jobs.NewClient fills it from a validated
// jobs.ClientConfig.
type Config struct {
	// Topic is ClientConfig.Topic: where jobs go unless a call says.
	Topic string
	// Writer writes the records: the client's producer, its Enqueue
	// middleware and its propagator.
	Writer Writer
	// TopicsMissing is jobs.ErrTopicsMissing, which the error of an
	// enqueue to a schedules topic the brokers do not list wraps.
	TopicsMissing error
	// Reader reads the dispatcher's answer to a cancel.
	Reader kafka.ReaderConfig
	// CancelWait bounds that wait when ctx has no earlier deadline.
	CancelWait time.Duration
}

// Client does what jobs.Client's methods say they do.
type Client struct {
	topic      string
	w          Writer
	schedules  schedulePartitions
	reader     kafka.ReaderConfig
	cancelWait time.Duration

	mu     sync.RWMutex
	closed bool
	// calls counts enqueue calls in progress and async failures not yet
	// reported, so Close neither closes the producer under a call nor
	// returns before a done ran.
	calls sync.WaitGroup
}

// New returns a Client that writes with cfg.Writer's producer, which it
// closes on Close.
func New(cfg Config) *Client {
	return &Client{topic: cfg.Topic, w: cfg.Writer, schedules: schedulePartitions{cfg.Writer.Producer, cfg.TopicsMissing},
		reader: cfg.Reader, cancelWait: cfg.CancelWait}
}

// Done receives an EnqueueAsync job's outcome: jobs adapts its caller's
// func(JobInfo, error), whose value an interface holds without an
// allocation.
type Done interface {
	Done(Info, error)
}

// Enqueue is jobs.Client.Enqueue.
func (c *Client) Enqueue(ctx context.Context, args Args, o Options) (Info, error) {
	if !c.enter() {
		return Info{}, ErrClosed
	}
	defer c.calls.Done()
	d, err := NewDraft(c.topic, args, &o, time.Now().UTC(), c.schedules.lookup(ctx))
	if err != nil {
		return Info{}, callError(err, "")
	}
	info := d.Info
	ds, err := c.w.Produce(ctx, []Draft{d})
	if err != nil {
		// ProduceSync's own error names the one job's failure; one that
		// a middleware wrapped stays whole, for errors.Is.
		var perr *kafka.ProduceError
		if errors.As(err, &perr) && len(perr.Errs) == 1 && err == error(perr) {
			err = perr.Errs[0]
		}
		return info, fmt.Errorf("jobs: enqueue %s job %s: %w", info.Kind, info.ID, err)
	}
	info.Partition, info.Offset = ds[0].Partition, ds[0].Offset
	return info, nil
}

// EnqueueMany is jobs.Client.EnqueueMany over n jobs, job(i) giving the
// i-th. It returns the jobs' drafts, whose Info says where each went (nil
// when nothing was sent), and the call's error.
func (c *Client) EnqueueMany(ctx context.Context, n int, job func(i int) (Args, Options)) ([]Draft, error) {
	if !c.enter() {
		return nil, ErrClosed
	}
	defer c.calls.Done()
	if n == 0 {
		return nil, nil
	}
	now := time.Now().UTC()
	drafts := make([]Draft, n)
	for i := range drafts {
		args, o := job(i)
		var err error
		if drafts[i], err = NewDraft(c.topic, args, &o, now, c.schedules.lookup(ctx)); err != nil {
			return nil, callError(err, fmt.Sprintf("params[%d]: ", i))
		}
	}
	ds, err := c.w.Produce(ctx, drafts)
	for i := range ds {
		drafts[i].Info.Partition, drafts[i].Info.Offset = ds[i].Partition, ds[i].Offset
	}
	if err != nil {
		nameOversized(err, drafts)
		return drafts, fmt.Errorf("jobs: enqueue %d jobs: %w", n, err)
	}
	return drafts, nil
}

// nameOversized makes the errors of jobs too large to send name the job: the
// size is the job's own, unlike a cause that failed many jobs alike.
func nameOversized(err error, drafts []Draft) {
	var perr *kafka.ProduceError
	if !errors.As(err, &perr) || len(perr.Errs) != len(drafts) {
		return
	}
	for i, e := range perr.Errs {
		if errors.Is(e, kafka.ErrMessageTooLarge) {
			perr.Errs[i] = fmt.Errorf("job %d (kind %q): %w", i, drafts[i].Info.Kind, e)
		}
	}
}

// EnqueueAsync is jobs.Client.EnqueueAsync.
func (c *Client) EnqueueAsync(ctx context.Context, args Args, o Options, done Done) {
	if !c.enter() {
		go done.Done(Info{}, ErrClosed)
		return
	}
	if c.w.Chain != nil {
		c.enqueueAsyncThrough(ctx, args, &o, done)
		return
	}
	msg, info, err := Prepare(c.topic, args, &o, time.Now().UTC(), c.schedules.lookup(ctx))
	if err != nil {
		c.failAsync(done, Info{}, callError(err, ""))
		return
	}
	defer c.calls.Done()
	if c.w.Inject != nil {
		c.w.Inject(ctx, &msg)
	}
	c.w.Producer.ProduceAsync(ctx, msg, deliver(info, done))
}

// deliver returns the producer's callback for an EnqueueAsync job: it
// passes the job's outcome to done.
func deliver(info Info, done Done) func(kafka.Delivery, error) {
	return func(d kafka.Delivery, err error) {
		if err != nil {
			done.Done(info, fmt.Errorf("jobs: enqueue %s job %s: %w", info.Kind, info.ID, err))
			return
		}
		info.Partition, info.Offset = d.Partition, d.Offset
		done.Done(info, nil)
	}
}

// failAsync reports an EnqueueAsync call that failed before its job reached
// the producer, on a goroutine of its own, and ends the call.
func (c *Client) failAsync(done Done, info Info, err error) {
	go func() {
		defer c.calls.Done()
		done.Done(info, err)
	}()
}

// enqueueAsyncThrough is EnqueueAsync through the client's middleware. Once
// next has handed the job to the producer, done waits for both the chain
// and the delivery, in either order, and gets the chain's error if it
// returned one, else the delivery's outcome.
func (c *Client) enqueueAsyncThrough(ctx context.Context, args Args, o *Options, done Done) {
	d, err := NewDraft(c.topic, args, o, time.Now().UTC(), c.schedules.lookup(ctx))
	if err != nil {
		c.failAsync(done, Info{}, callError(err, ""))
		return
	}
	info := d.Info
	out := &asyncOutcome{report: deliver(info, done)}
	handed := false
	err = c.w.through(ctx, []Draft{d}, func(ctx context.Context, msgs []kafka.Message) error {
		if handed {
			return errors.New("an Enqueue middleware called next twice in EnqueueAsync: the job was written once")
		}
		handed = true
		c.w.Producer.ProduceAsync(ctx, msgs[0], out.delivered)
		return nil
	})
	if !handed {
		c.failAsync(done, info, fmt.Errorf("jobs: enqueue %s job %s: %w", info.Kind, info.ID, err))
		return
	}
	if out.chainReturned(err) {
		go func() {
			defer c.calls.Done()
			out.done()
		}()
		return
	}
	c.calls.Done()
}

// Cancel is jobs.Client.Cancel: it returns the dispatcher's answer, a
// schedule.CancelOutcome value, or "" when none came.
func (c *Client) Cancel(ctx context.Context, jobID string, o Options) (string, error) {
	if !c.enter() {
		return "", ErrClosed
	}
	defer c.calls.Done()
	topic := c.topic
	if o.TopicSet {
		topic = o.Topic
	}
	switch {
	case jobID == "":
		return "", fmt.Errorf("%w: Cancel: the job id is empty", ErrInvalid)
	case o.periodicOnly() != "":
		return "", fmt.Errorf("%w: Cancel: %s is for jobs.Periodic only", ErrInvalid, o.periodicOnly())
	case o.KeySet || o.PartitionKeySet || o.Headers != nil || o.Metadata != nil || o.RunAtSet || o.DelaySet:
		return "", fmt.Errorf("%w: Cancel takes WithTopic only", ErrInvalid)
	case topic == "":
		return "", fmt.Errorf("%w: Cancel: no topic: set ClientConfig.Topic or pass WithTopic", ErrInvalid)
	}
	if err := kafka.CheckTopicName(topic); err != nil {
		return "", fmt.Errorf("%w: Cancel: WithTopic: %w", ErrInvalid, err)
	}
	ds, err := c.w.Producer.ProduceSync(ctx, kafka.Message{Topic: topic + ScheduleSuffix, Key: []byte(jobID),
		Headers: []kafka.Header{{Key: schedule.HeaderCancel, Value: []byte("1")}}})
	if err != nil {
		return "", fmt.Errorf("jobs: cancel job %s: %w", jobID, err)
	}
	wait, cancel := context.WithTimeout(ctx, c.cancelWait)
	defer cancel()
	return schedule.CancelAnswer(wait, c.reader, ds[0], jobID), nil
}

// Close is jobs.Client.Close.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.calls.Wait()
	if err := c.w.Producer.Close(); err != nil {
		return fmt.Errorf("jobs: close client: %w", err)
	}
	return nil
}

func (c *Client) enter() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	c.calls.Add(1)
	return true
}
