package jobs

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// deadLetterWriter is a server's one writer of dead letters. The executor
// hands it a record and holds the record's key; the writer sends what has
// queued in one produce call, and once the broker has acknowledged a dead
// letter it releases the record, which then counts as finished. A write that
// fails is tried again after a back-off, so an unwritable dead-letter topic
// stalls only the keys whose records wait here, never a concurrency slot or
// another key.
type deadLetterWriter struct {
	producer *kafka.Producer
	workers  *Workers
	topic    string
	group    string
	backoff  supervision.Backoff
	metrics  *Metrics
	tally    *tally // nil when the status reports are off
	log      *slog.Logger

	mu       sync.Mutex
	queue    []*deadLetter
	wake     chan struct{}
	quit     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
}

type deadLetter struct {
	msg     kafka.Message
	kind    string
	release actors.Release
	// attrs say which job this is in every log line about it; kept apart
	// rather than bound into a logger, which would format them even when
	// nothing is logged.
	attrs []any
	// failures counts failed writes; the next is not tried before due.
	failures int
	due      time.Time
}

func newDeadLetterWriter(p *kafka.Producer, ws *Workers, topic, group string, b supervision.Backoff, m *Metrics, log *slog.Logger) *deadLetterWriter {
	return &deadLetterWriter{
		producer: p, workers: ws, topic: topic, group: group, backoff: b, metrics: m, log: log,
		wake: make(chan struct{}, 1),
	}
}

// start starts the writer's goroutine; stop ends it.
func (w *deadLetterWriter) start() {
	w.quit, w.stopped = make(chan struct{}), make(chan struct{})
	go w.run()
}

// write queues the record's dead letter, with headers naming where it came
// from and why it is here.
func (w *deadLetterWriter) write(r *kafka.Record, attempt int, kind, reason string, release actors.Release) {
	d := &deadLetter{
		msg:     deadLetterMessage(w.topic, w.group, r, attempt, kind, reason),
		kind:    kind,
		release: release,
		attrs: []any{"kind", kind, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"attempts", attempt, "dead_letter_topic", w.topic, "reason", reason},
	}
	w.mu.Lock()
	w.queue = append(w.queue, d)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// deadLetterMessage is the dead letter of record r: its key, value and
// headers, and headers naming where it came from and why it is here.
func deadLetterMessage(topic, group string, r *kafka.Record, attempt int, kind, reason string) kafka.Message {
	return kafka.Message{
		Topic: topic,
		Key:   r.Key,
		Value: r.Value,
		Headers: append(slices.Clip(r.Headers),
			kafka.Header{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
			kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(r.Partition))},
			kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kafka.Header{Key: HeaderSourceGroup, Value: []byte(group)},
			kafka.Header{Key: HeaderSourceAttempts, Value: []byte(strconv.Itoa(attempt))},
			kafka.Header{Key: HeaderSourceKind, Value: []byte(kind)},
			kafka.Header{Key: HeaderError, Value: []byte(reason)},
		),
	}
}

// stop ends the writer. Dead letters still queued are dropped: their
// partitions were revoked, so their records were not committed and run again
// on the partitions' next owners.
func (w *deadLetterWriter) stop() {
	if w.quit == nil {
		return // never started
	}
	w.stopOnce.Do(func() {
		close(w.quit)
		<-w.stopped
	})
}

// inFlightBatches is how many batches of dead letters may await their
// acknowledgement at once: every dead letter holds its key until then, so a
// new one should not wait for the previous batch's round trip.
const inFlightBatches = 4

func (w *deadLetterWriter) run() {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sending := make(chan struct{}, inFlightBatches)
	var sends sync.WaitGroup
	defer sends.Wait()
	for {
		select {
		case <-w.quit:
			return
		case <-w.wake:
		case <-timer.C:
		}
		batch, next := w.due(time.Now())
		timer.Reset(next)
		if len(batch) == 0 {
			continue
		}
		select {
		case sending <- struct{}{}:
		case <-w.quit:
			return
		}
		sends.Add(1)
		go func() {
			defer sends.Done()
			w.send(batch)
			<-sending
			// More may have come while the batch was sent.
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}()
	}
}

// due takes the dead letters whose time has come and drops those whose
// partition was revoked; it says when the next one is due.
func (w *deadLetterWriter) due(now time.Time) (batch []*deadLetter, next time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	next = time.Hour
	waiting := w.queue[:0]
	for _, d := range w.queue {
		switch {
		case isClosed(d.release.Revoked()):
		case d.due.After(now):
			waiting = append(waiting, d)
			next = min(next, d.due.Sub(now))
		default:
			batch = append(batch, d)
		}
	}
	clear(w.queue[len(waiting):])
	w.queue = waiting
	return batch, next
}

func (w *deadLetterWriter) send(batch []*deadLetter) {
	msgs := make([]kafka.Message, len(batch))
	for i, d := range batch {
		msgs[i] = d.msg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := w.producer.ProduceSync(ctx, msgs...)
	cancel()
	var failed []error
	if pe := (*kafka.ProduceError)(nil); errors.As(err, &pe) {
		failed = pe.Errs
	}
	var retry []*deadLetter
	for i, d := range batch {
		derr := err
		if failed != nil {
			derr = failed[i]
		}
		if derr == nil {
			w.metrics.jobDeadLettered(w.workers.metricKind(d.kind))
			w.tally.deadLettered(d.kind)
			w.log.Error("ordo: job dead-lettered", d.attrs...)
			d.release.Finish()
			continue
		}
		d.failures++
		wait := w.backoff.Delay(d.failures)
		d.due = time.Now().Add(wait)
		w.metrics.deadLetterWriteFailed()
		w.log.Error("ordo: dead-letter write failed; retrying while its key waits",
			append(d.attrs[:len(d.attrs):len(d.attrs)], "err", derr, "failures", d.failures, "retry_in", wait)...)
		retry = append(retry, d)
	}
	if len(retry) > 0 {
		w.mu.Lock()
		w.queue = append(w.queue, retry...)
		w.mu.Unlock()
	}
}

// metricKind is kind when it has a worker, else "unknown", so that bad
// input cannot grow the series without bound.
func (ws *Workers) metricKind(kind string) string {
	if ws.lookup(kind) == nil {
		return "unknown"
	}
	return kind
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
