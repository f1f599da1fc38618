// Package tracing carries a job's trace context from its enqueue to its runs
// in the record's headers, and wraps each run in an OpenTelemetry consumer
// span. Package jobs injects the context when it writes a job (Inject); the
// executor starts each run's span (Tracer.Start). It knows nothing of jobs.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordo-go/ordo/kafka"
)

// tracerName names ordo's tracer, by the import path of the package users
// configure it in (jobs), as OpenTelemetry asks.
const tracerName = "github.com/ordo-go/ordo/jobs"

// headerCarrier lets a propagator read and write a record's headers.
type headerCarrier struct{ headers *[]kafka.Header }

var _ propagation.TextMapCarrier = headerCarrier{}

func (c headerCarrier) Get(key string) string {
	for _, h := range *c.headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Set replaces a header of the same name, so a job re-enqueued from inside
// a traced Work does not carry two parents.
func (c headerCarrier) Set(key, value string) {
	for i, h := range *c.headers {
		if h.Key == key {
			(*c.headers)[i].Value = []byte(value)
			return
		}
	}
	*c.headers = append(*c.headers, kafka.Header{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(*c.headers))
	for i, h := range *c.headers {
		keys[i] = h.Key
	}
	return keys
}

// Inject writes ctx's trace context into msg's headers; nothing when tracing
// is off (p is nil).
func Inject(ctx context.Context, p propagation.TextMapPropagator, msg *kafka.Message) {
	if p == nil {
		return
	}
	p.Inject(ctx, headerCarrier{&msg.Headers})
}

// Tracer carries the enqueuer's trace context into a run and, with a
// TracerProvider, wraps each run in a consumer span. A nil *Tracer is
// tracing turned off and costs a nil check.
type Tracer struct {
	propagator propagation.TextMapPropagator
	tracer     trace.Tracer // nil: propagate only
}

// New returns the Tracer of a server configured with p and tp; nil when
// both are (tracing off). Without p, the W3C trace context propagates.
func New(p propagation.TextMapPropagator, tp trace.TracerProvider) *Tracer {
	if p == nil && tp == nil {
		return nil
	}
	if p == nil {
		p = propagation.TraceContext{}
	}
	t := &Tracer{propagator: p}
	if tp != nil {
		t.tracer = tp.Tracer(tracerName)
	}
	return t
}

// Span ends a run's span; the zero value does nothing.
type Span struct{ span trace.Span }

// Start begins the run of job id of kind, read from r: ctx gains the trace
// context r carries and, with a TracerProvider, the run's span.
func (t *Tracer) Start(ctx context.Context, kind, id string, r *kafka.Record) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx = t.propagator.Extract(ctx, headerCarrier{&r.Headers})
	if t.tracer == nil {
		return ctx, Span{}
	}
	ctx, span := t.tracer.Start(ctx, kind+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", r.Topic),
			attribute.Int("messaging.destination.partition.id", r.Partition),
			attribute.Int64("messaging.kafka.offset", r.Offset),
			attribute.String("messaging.message.id", id),
			attribute.String("ordo.job.kind", kind),
		))
	return ctx, Span{span}
}

// End ends the span, recording err as its error when there is one.
func (s Span) End(err error) {
	if s.span == nil {
		return
	}
	if err != nil {
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}
