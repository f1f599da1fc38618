package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

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
	// refusals counts the writes refused for good (kafka.IsRefused);
	// argsDropped is set once msg was rebuilt without the job's value.
	refusals    int
	argsDropped bool
}

// MaxReasonBytes is the most bytes of a job's error that a dead letter's
// HeaderError and a log line carry. A longer one keeps its start and ends in
// "… [cut: N bytes]", N its full length, the whole within MaxReasonBytes.
// 4 KiB holds any error a person reads whole, while headers count toward
// Kafka's message size (1 MB by default) and every log line carries it:
// uncut, a 1 MB error made its dead letter too large to write and logged
// 1 MB on every try.
const MaxReasonBytes = 4 << 10

// cutReason is s, or its start, cut on a rune boundary, and a marker
// naming its length when s is longer than MaxReasonBytes. The result does
// not share s's memory.
func cutReason(s string) string {
	if len(s) <= MaxReasonBytes {
		return s
	}
	marker := "… [cut: " + strconv.Itoa(len(s)) + " bytes]"
	n := MaxReasonBytes - len(marker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}

// errText logs an error's text cut by cutReason, and formats it only when
// the line is written.
type errText struct{ err error }

func (e errText) LogValue() slog.Value { return slog.StringValue(cutReason(e.err.Error())) }

// maxRefusals is how many times a dead letter the broker refuses for good
// (not authorized, invalid, too large even without the job's value) is
// written before it is given up: a refusal is not a blip, and a key must not
// wait forever behind one.
const maxRefusals = 3

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
	// A kind read from a header is input too, as long as its record allows.
	kind, reason = cutReason(kind), cutReason(reason)
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
		switch {
		case derr == nil:
			w.metrics.jobDeadLettered(w.workers.metricKind(d.kind))
			w.tally.deadLettered(d.kind)
			w.log.Error("ordo: job dead-lettered", d.attrs...)
			d.release.Finish()
		case kafka.IsTooLarge(derr) && len(batch) > 1:
			// The broker refuses a record batch whole for one message too
			// large (and the producer a call): sent alone, only that one
			// loses its args.
			w.send([]*deadLetter{d})
		case kafka.IsTooLarge(derr) && !d.argsDropped:
			w.metrics.deadLetterWriteFailed()
			d.dropArgs(derr)
			w.log.Warn("ordo: dead letter too large; writing it without the job's args, which stay at the source offset",
				append(d.attrs[:len(d.attrs):len(d.attrs)], "err", errText{derr})...)
			retry = append(retry, d) // due at once
		default:
			w.metrics.deadLetterWriteFailed()
			d.failures++
			if kafka.IsRefused(derr) {
				d.refusals++
			}
			attrs := append(d.attrs[:len(d.attrs):len(d.attrs)], "err", errText{derr}, "failures", d.failures)
			if d.refusals >= maxRefusals {
				// Holding the key would stop its partition for good, and
				// no retry will pass. The job stays readable at its
				// source offset until the topic's retention.
				w.metrics.deadLetterDropped()
				w.log.Error("ordo: dead letter refused by the broker; the job is committed without one, read it at its source offset", attrs...)
				d.release.Finish()
				continue
			}
			wait := w.backoff.Delay(d.failures)
			d.due = time.Now().Add(wait)
			w.log.Error("ordo: dead-letter write failed; retrying while its key waits", append(attrs, "retry_in", wait)...)
			retry = append(retry, d)
		}
	}
	if len(retry) > 0 {
		w.mu.Lock()
		w.queue = append(w.queue, retry...)
		w.mu.Unlock()
	}
}

// dropArgs rebuilds the dead letter without the job's value, saying why
// in HeaderArgsDropped; the source headers say where the job is.
func (d *deadLetter) dropArgs(refusal error) {
	why := cutReason(fmt.Sprintf("refused as too large with the job's %d-byte value: %v", len(d.msg.Value), refusal))
	d.msg.Value = nil
	d.msg.Headers = append(d.msg.Headers[:len(d.msg.Headers):len(d.msg.Headers)],
		kafka.Header{Key: HeaderArgsDropped, Value: []byte(why)})
	d.argsDropped = true
	d.attrs = append(d.attrs[:len(d.attrs):len(d.attrs)], "args_dropped", true)
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
