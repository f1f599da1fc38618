package jobs

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordo-go/ordo/kafka"
)

// tracerName names ordo's tracer, by its import path as OpenTelemetry asks.
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

// inject writes ctx's trace context into msg's headers; nothing when tracing
// is off.
func inject(ctx context.Context, p propagation.TextMapPropagator, msg *kafka.Message) {
	if p == nil {
		return
	}
	p.Inject(ctx, headerCarrier{&msg.Headers})
}

// jobTracer carries the enqueuer's trace context into Work and, with a
// TracerProvider, wraps each run in a consumer span. A nil *jobTracer is
// tracing turned off and costs a nil check.
type jobTracer struct {
	propagator propagation.TextMapPropagator
	tracer     trace.Tracer // nil: propagate only
}

func newJobTracer(p propagation.TextMapPropagator, tp trace.TracerProvider) *jobTracer {
	if p == nil && tp == nil {
		return nil
	}
	if p == nil {
		p = propagation.TraceContext{}
	}
	t := &jobTracer{propagator: p}
	if tp != nil {
		t.tracer = tp.Tracer(tracerName)
	}
	return t
}

// jobSpan ends a run's span; the zero value does nothing.
type jobSpan struct{ span trace.Span }

func (t *jobTracer) start(ctx context.Context, kind, id string, r *kafka.Record) (context.Context, jobSpan) {
	if t == nil {
		return ctx, jobSpan{}
	}
	ctx = t.propagator.Extract(ctx, headerCarrier{&r.Headers})
	if t.tracer == nil {
		return ctx, jobSpan{}
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
	return ctx, jobSpan{span}
}

func (s jobSpan) end(err error) {
	if s.span == nil {
		return
	}
	if err != nil {
		s.span.RecordError(err)
		s.span.SetStatus(codes.Error, err.Error())
	}
	s.span.End()
}
