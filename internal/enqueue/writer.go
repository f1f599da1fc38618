package enqueue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/ordo-go/ordo/internal/middleware"
	"github.com/ordo-go/ordo/kafka"
)

// Chain runs next inside the Enqueue phase of the middleware of a client or
// server (jobs' Middleware), which may change each draft's Raw before next
// writes its record.
type Chain func(ctx context.Context, drafts []Draft, next func(context.Context) error) error

// ChainOf runs the Enqueue phases, phases[0] outermost, over the raw jobs
// of the drafts, and gives each draft what they left; nil without phases,
// so that an enqueue costs one nil check.
func ChainOf[R middleware.Job](phases []middleware.Phase[R]) Chain {
	if len(phases) == 0 {
		return nil
	}
	return func(ctx context.Context, drafts []Draft, next func(context.Context) error) error {
		raws := make([]R, len(drafts))
		ptrs := make([]*R, len(drafts))
		for i := range drafts {
			raws[i] = R(drafts[i].Raw())
			ptrs[i] = &raws[i]
		}
		return middleware.Nest(ctx, phases, ptrs, func(ctx context.Context) error {
			for i := range drafts {
				drafts[i].SetRaw(middleware.Raw(raws[i]))
			}
			return next(ctx)
		})
	}
}

// Writer writes the records of drafts with Producer, through Chain when it
// is set. Inject, when set, writes the trace context of the ctx that
// reaches the write into each record.
type Writer struct {
	Producer *kafka.Producer
	Chain    Chain
	Inject   func(context.Context, *kafka.Message)
}

// errNextNotCalled fails an enqueue whose middleware returned without
// writing the jobs.
var errNextNotCalled = errors.New("an Enqueue middleware returned without calling next: nothing was written")

// Produce writes the records of drafts and waits for them. The Enqueue
// middleware's changes land in drafts, which every caller builds for the
// call. Without middleware it allocates nothing beyond the records.
func (w *Writer) Produce(ctx context.Context, drafts []Draft) ([]kafka.Delivery, error) {
	if w.Chain != nil {
		var ds []kafka.Delivery
		err := w.through(ctx, drafts, func(ctx context.Context, msgs []kafka.Message) (err error) {
			ds, err = w.Producer.ProduceSync(ctx, msgs...)
			return err
		})
		return ds, err
	}
	msgs, err := w.records(ctx, drafts)
	if err != nil {
		return nil, err
	}
	return w.Producer.ProduceSync(ctx, msgs...)
}

// through runs the Enqueue middleware around write, which gets the drafts'
// records built from what the middleware left.
func (w *Writer) through(ctx context.Context, drafts []Draft, write func(context.Context, []kafka.Message) error) error {
	written := false
	err := w.Chain(ctx, drafts, func(ctx context.Context) error {
		written = true
		msgs, err := w.records(ctx, drafts)
		if err != nil {
			return fmt.Errorf("after the Enqueue middleware: %w", err)
		}
		return write(ctx, msgs)
	})
	if err == nil && !written {
		err = errNextNotCalled
	}
	return err
}

// records encodes the drafts' records, with the trace context of ctx. Its
// error wraps ErrInvalid: the record would not decode.
func (w *Writer) records(ctx context.Context, drafts []Draft) ([]kafka.Message, error) {
	msgs := make([]kafka.Message, len(drafts))
	for i := range drafts {
		var err error
		if msgs[i], err = drafts[i].Record(); err != nil {
			return nil, fmt.Errorf("%w: %s job %s: %w", ErrInvalid, drafts[i].env.Kind, drafts[i].env.ID, err)
		}
		if w.Inject != nil {
			w.Inject(ctx, &msgs[i])
		}
	}
	return msgs, nil
}

// asyncOutcome is an EnqueueAsync job's outcome through middleware: its two
// halves, the chain's error and the producer's delivery, come in either
// order.
type asyncOutcome struct {
	halves   atomic.Int32
	chainErr error
	delivery kafka.Delivery
	err      error
	report   func(kafka.Delivery, error)
}

// chainReturned takes the chain's error and says whether the delivery came
// first, so that the caller reports it.
func (o *asyncOutcome) chainReturned(err error) (last bool) {
	o.chainErr = err
	return o.halves.Add(1) == 2
}

func (o *asyncOutcome) delivered(d kafka.Delivery, err error) {
	o.delivery, o.err = d, err
	if o.halves.Add(1) == 2 {
		o.done()
	}
}

func (o *asyncOutcome) done() {
	if o.chainErr != nil {
		o.report(kafka.Delivery{Partition: -1, Offset: -1}, o.chainErr)
		return
	}
	o.report(o.delivery, o.err)
}
