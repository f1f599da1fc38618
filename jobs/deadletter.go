package jobs

import (
	"log/slog"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/deadletter"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/kafka"
)

// deadLetterWriter is the executor's name for the server's writer of dead
// letters.
type deadLetterWriter struct{ *deadletter.Writer }

// MaxReasonBytes is the most bytes of a job's error that a dead letter's
// HeaderError and a log line carry. A longer one keeps its start and ends in
// "… [cut: N bytes]", N its full length, the whole within MaxReasonBytes.
// 4 KiB holds any error a person reads whole, while headers count toward
// Kafka's message size (1 MB by default) and every log line carries it:
// uncut, a 1 MB error made its dead letter too large to write and logged
// 1 MB on every try.
const MaxReasonBytes = 4 << 10

// cutReason is s, or its start, cut to MaxReasonBytes (see deadletter.Cut).
func cutReason(s string) string { return deadletter.Cut(s, MaxReasonBytes) }

// errText logs an error's text cut by cutReason, and formats it only when
// the line is written.
type errText struct{ err error }

func (e errText) LogValue() slog.Value { return slog.StringValue(cutReason(e.err.Error())) }

func newDeadLetterWriter(p *kafka.Producer, topic, group string, b Backoff, c deadletter.Counter, log *slog.Logger) *deadLetterWriter {
	return &deadLetterWriter{deadletter.New(deadletter.Config{Producer: p, Topic: topic, Group: group, Backoff: b, Counter: c, Log: log,
		MaxReasonBytes: MaxReasonBytes, Headers: deadletter.Headers{
			SourceTopic: HeaderSourceTopic, SourcePartition: HeaderSourcePartition, SourceOffset: HeaderSourceOffset,
			SourceGroup: HeaderSourceGroup, SourceAttempts: HeaderSourceAttempts, SourceKind: HeaderSourceKind,
			Error: HeaderError, ArgsDropped: HeaderArgsDropped,
		}})}
}

// write is WriteRecord under the name the executor calls.
func (w *deadLetterWriter) write(r *kafka.Record, attempt int, kind, reason string, release actors.Release) {
	w.WriteRecord(r, attempt, kind, reason, release)
}

// deadLetterCounter counts a server's dead letters in its metrics and its
// status reports.
type deadLetterCounter struct {
	metrics *Metrics
	workers *Workers
	tally   *status.Tally // nil when the status reports are off
}

func (c deadLetterCounter) Written(kind string) {
	c.metrics.jobDeadLettered(metricKind(c.workers, kind))
	c.tally.DeadLettered(kind)
}

func (c deadLetterCounter) WriteFailed() { c.metrics.deadLetterWriteFailed() }
func (c deadLetterCounter) Dropped()     { c.metrics.deadLetterDropped() }

// metricKind is kind when it has a worker, else "unknown", so that bad
// input cannot grow the series without bound.
func metricKind(ws *Workers, kind string) string {
	if executor.Lookup(ws, kind) == nil {
		return "unknown"
	}
	return kind
}

// replayMarker tells whether r is the marker a replay appends to a
// dead-letter topic (see HeaderReplayOf), which a server reading that topic
// to re-run its dead letters commits without running or dead-lettering it.
// Only a record that is no job (it has no worker) is asked.
func replayMarker(r *kafka.Record) bool {
	return len(r.Value) == 0 && r.Header(HeaderReplayOf) != nil
}
