package jobs

import (
	"context"

	"go.opentelemetry.io/otel/propagation"

	"github.com/ordo-go/ordo/internal/tracing"
	"github.com/ordo-go/ordo/kafka"
)

// inject writes ctx's trace context into msg's headers; nothing when tracing
// is off.
func inject(ctx context.Context, p propagation.TextMapPropagator, msg *kafka.Message) {
	tracing.Inject(ctx, p, msg)
}
