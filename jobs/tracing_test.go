package jobs_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

type traced struct{ seqArgs }

func (traced) Kind() string { return "traced" }

// runTraced enqueues one job under a span of its own and returns the span
// context its Work saw.
func runTraced(t *testing.T, clientProp propagation.TextMapPropagator, configure func(*jobs.Config, trace.TracerProvider)) (enqueuer trace.SpanContext, seen trace.SpanContext, rec *tracetest.SpanRecorder) {
	t.Helper()
	env := kafkatest.New(t)
	topic := env.Topic(t, 1)
	rec = tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	got := make(chan trace.SpanContext, 1)
	workers := jobs.NewWorkers()
	mustAdd(t, workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[traced]) error {
		got <- trace.SpanContextFromContext(ctx)
		return nil
	}))
	cfg := serverConfig(t, env, topic, workers)
	if configure != nil {
		configure(&cfg, tp)
	}
	startJobServer(t, cfg)

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Propagator: clientProp, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, span := tp.Tracer("test").Start(context.Background(), "enqueue")
	if _, err := client.Enqueue(ctx, traced{seqArgs{Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	span.End()
	select {
	case seen = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("job did not run")
	}
	return span.SpanContext(), seen, rec
}

func TestTraceContextTravelsFromEnqueueToWork(t *testing.T) {
	t.Parallel()
	enq, seen, _ := runTraced(t, propagation.TraceContext{}, func(c *jobs.Config, _ trace.TracerProvider) { c.Propagator = propagation.TraceContext{} })
	if !seen.IsRemote() || seen.TraceID() != enq.TraceID() || seen.SpanID() != enq.SpanID() {
		t.Errorf("Work saw span context %v, want the enqueuer's %v, remote", seen, enq)
	}
}

func TestTracerProviderWrapsWorkInAConsumerSpan(t *testing.T) {
	t.Parallel()
	enq, seen, rec := runTraced(t, propagation.TraceContext{}, func(c *jobs.Config, tp trace.TracerProvider) { c.TracerProvider = tp })
	if seen.TraceID() != enq.TraceID() || seen.SpanID() == enq.SpanID() || seen.IsRemote() {
		t.Fatalf("Work saw %v; want a local child span in the enqueuer's trace %v", seen, enq.TraceID())
	}
	var consumer sdktrace.ReadOnlySpan
	kafkatest.WaitFor(t, 10*time.Second, "the consumer span to end", func() bool {
		for _, s := range rec.Ended() {
			if s.SpanContext().SpanID() == seen.SpanID() {
				consumer = s
			}
		}
		return consumer != nil
	})
	if consumer.SpanKind() != trace.SpanKindConsumer || consumer.Parent().SpanID() != enq.SpanID() || consumer.Name() != "traced process" {
		t.Errorf("span %q kind %v parent %v; want \"traced process\", consumer, parent %v",
			consumer.Name(), consumer.SpanKind(), consumer.Parent().SpanID(), enq.SpanID())
	}
}

func TestTracingIsOffByDefault(t *testing.T) {
	t.Parallel()
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		_, seen, _ := runTraced(t, propagation.TraceContext{}, nil)
		if seen.IsValid() {
			t.Errorf("Work saw span context %v with tracing off", seen)
		}
	})
	t.Run("client", func(t *testing.T) {
		t.Parallel()
		_, seen, _ := runTraced(t, nil, func(c *jobs.Config, _ trace.TracerProvider) { c.Propagator = propagation.TraceContext{} })
		if seen.IsValid() {
			t.Errorf("Work saw span context %v though the client propagates nothing", seen)
		}
	})
}
