// Package deadletter writes a server's dead letters. Each dead letter holds
// its record's key until the broker has acknowledged it; only then is the
// record released, and counts as finished. A dead letter is its record
// with headers saying where it came from and why it is here; the headers'
// names are package jobs' to say (Config.Headers), and this package builds
// and writes it.
package deadletter

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

// Counter counts what a Writer did.
type Counter interface {
	// Written: the broker acknowledged the dead letter of a job of kind.
	Written(kind string)
	// WriteFailed: a write failed; it is tried again, or given up.
	WriteFailed()
	// Dropped: a dead letter was given up and its record released.
	Dropped()
}

// Headers names the headers a dead letter adds to its record's.
type Headers struct {
	SourceTopic, SourcePartition, SourceOffset, SourceGroup, SourceAttempts, SourceKind string
	Error                                                                               string
	// ArgsDropped says why a dead letter too large to write was written
	// without its record's value.
	ArgsDropped string
}

// Config configures a Writer.
type Config struct {
	Producer *kafka.Producer
	// Topic is the dead-letter topic; Group the consumer group the dead
	// letters' records were read in.
	Topic, Group string
	Headers      Headers
	Backoff      supervision.Backoff
	Counter      Counter
	Log          *slog.Logger
	// MaxReasonBytes bounds the header's and the log lines' reasons (Cut).
	MaxReasonBytes int
}

// Writer is a server's one writer of dead letters. The executor hands it a
// dead letter and holds the record's key; the writer sends what has queued
// in one produce call, and once the broker has acknowledged a dead letter it
// releases the record. A write that fails is tried again after a back-off,
// so an unwritable dead-letter topic stalls only the keys whose records wait
// here, never a concurrency slot or another key.
type Writer struct {
	cfg Config

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

// Cut is s, or its start, cut on a rune boundary, and a marker naming its
// length when s is longer than max bytes; the whole is within max. The
// result does not share s's memory.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	marker := "… [cut: " + strconv.Itoa(len(s)) + " bytes]"
	n := max - len(marker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + marker
}

// maxRefusals is how many times a dead letter the broker refuses for good
// (not authorized, invalid, too large even without the job's value) is
// written before it is given up: a refusal is not a blip, and a key must not
// wait forever behind one.
const maxRefusals = 3

// New builds a writer; Start starts it.
func New(cfg Config) *Writer {
	return &Writer{cfg: cfg, wake: make(chan struct{}, 1)}
}

// Start starts the writer's goroutine; Stop ends it.
func (w *Writer) Start() {
	w.quit, w.stopped = make(chan struct{}), make(chan struct{})
	go w.run()
}

// WriteRecord queues the dead letter of record r, a job of kind that ran
// attempt times and failed for reason, and releases it once the broker has
// it. kind and reason are cut to MaxReasonBytes: a kind read from a header
// is input too, as long as its record allows.
func (w *Writer) WriteRecord(r *kafka.Record, attempt int, kind, reason string, release actors.Release) {
	kind, reason = Cut(kind, w.cfg.MaxReasonBytes), Cut(reason, w.cfg.MaxReasonBytes)
	w.write(w.Message(r, attempt, kind, reason), kind, release,
		[]any{"kind", kind, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"attempts", attempt, "dead_letter_topic", w.cfg.Topic, "reason", reason})
}

// Message is the dead letter of record r: its key, value and headers, and
// headers naming where it came from and why it is here.
func (w *Writer) Message(r *kafka.Record, attempt int, kind, reason string) kafka.Message {
	h := w.cfg.Headers
	return kafka.Message{
		Topic: w.cfg.Topic,
		Key:   r.Key,
		Value: r.Value,
		Headers: append(slices.Clip(r.Headers),
			kafka.Header{Key: h.SourceTopic, Value: []byte(r.Topic)},
			kafka.Header{Key: h.SourcePartition, Value: []byte(strconv.Itoa(r.Partition))},
			kafka.Header{Key: h.SourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kafka.Header{Key: h.SourceGroup, Value: []byte(w.cfg.Group)},
			kafka.Header{Key: h.SourceAttempts, Value: []byte(strconv.Itoa(attempt))},
			kafka.Header{Key: h.SourceKind, Value: []byte(kind)},
			kafka.Header{Key: h.Error, Value: []byte(reason)},
		),
	}
}

// write queues msg, the dead letter of a job of kind, and releases it once
// the broker has it. attrs name the job in the log lines about it.
func (w *Writer) write(msg kafka.Message, kind string, release actors.Release, attrs []any) {
	d := &deadLetter{msg: msg, kind: kind, release: release, attrs: attrs}
	w.mu.Lock()
	w.queue = append(w.queue, d)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stop ends the writer. Dead letters still queued are dropped: their
// partitions were revoked, so their records were not committed and run again
// on the partitions' next owners.
func (w *Writer) Stop() {
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

func (w *Writer) run() {
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
func (w *Writer) due(now time.Time) (batch []*deadLetter, next time.Duration) {
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

func (w *Writer) send(batch []*deadLetter) {
	msgs := make([]kafka.Message, len(batch))
	for i, d := range batch {
		msgs[i] = d.msg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, err := w.cfg.Producer.ProduceSync(ctx, msgs...)
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
			w.cfg.Counter.Written(d.kind)
			w.cfg.Log.Error("ordo: job dead-lettered", d.attrs...)
			d.release.Finish()
		case kafka.IsTooLarge(derr) && len(batch) > 1:
			// The broker refuses a record batch whole for one message too
			// large (and the producer a call): sent alone, only that one
			// loses its args.
			w.send([]*deadLetter{d})
		case kafka.IsTooLarge(derr) && !d.argsDropped:
			w.cfg.Counter.WriteFailed()
			w.dropArgs(d, derr)
			w.cfg.Log.Warn("ordo: dead letter too large; writing it without the job's args, which stay at the source offset",
				append(d.attrs[:len(d.attrs):len(d.attrs)], "err", w.errText(derr))...)
			retry = append(retry, d) // due at once
		default:
			w.cfg.Counter.WriteFailed()
			d.failures++
			if kafka.IsRefused(derr) {
				d.refusals++
			}
			attrs := append(d.attrs[:len(d.attrs):len(d.attrs)], "err", w.errText(derr), "failures", d.failures)
			if d.refusals >= maxRefusals {
				// Holding the key would stop its partition for good, and
				// no retry will pass. The job stays readable at its
				// source offset until the topic's retention.
				w.cfg.Counter.Dropped()
				w.cfg.Log.Error("ordo: dead letter refused by the broker; the job is committed without one, read it at its source offset", attrs...)
				d.release.Finish()
				continue
			}
			wait := w.cfg.Backoff.Delay(d.failures)
			d.due = time.Now().Add(wait)
			w.cfg.Log.Error("ordo: dead-letter write failed; retrying while its key waits", append(attrs, "retry_in", wait)...)
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
// in the ArgsDroppedHeader; the other headers say where the job is.
func (w *Writer) dropArgs(d *deadLetter, refusal error) {
	why := Cut(fmt.Sprintf("refused as too large with the job's %d-byte value: %v", len(d.msg.Value), refusal), w.cfg.MaxReasonBytes)
	d.msg.Value = nil
	d.msg.Headers = append(d.msg.Headers[:len(d.msg.Headers):len(d.msg.Headers)],
		kafka.Header{Key: w.cfg.Headers.ArgsDropped, Value: []byte(why)})
	d.argsDropped = true
	d.attrs = append(d.attrs[:len(d.attrs):len(d.attrs)], "args_dropped", true)
}

// ErrText logs err's text cut to max bytes (as a dead letter's reason is),
// and formats it only when the line is written.
func ErrText(err error, max int) slog.LogValuer { return errText{err, max} }

type errText struct {
	err error
	max int
}

func (e errText) LogValue() slog.Value { return slog.StringValue(Cut(e.err.Error(), e.max)) }

func (w *Writer) errText(err error) slog.LogValuer { return ErrText(err, w.cfg.MaxReasonBytes) }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
