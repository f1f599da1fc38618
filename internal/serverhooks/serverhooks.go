// Package serverhooks lets the chaos runner, and tests, watch what a
// jobs.Server's runtime commits and lets go of, without a setting users
// would see: the hooks ride on the context given to Server.Start, as
// net/http/httptrace hooks ride on a request's, so each server has its own
// and none is process-global.
package serverhooks

import (
	"context"

	"github.com/ordo-go/ordo/kafka"
)

// Hooks are called by one server's actor runtime; see actors.Config's
// OnCommitted and OnReleased for when. A nil field is not called.
type Hooks struct {
	// Committed is called with each offset the server committed, after
	// the broker accepted it.
	Committed func(kafka.Offset)
	// Released is called for each partition the server gave up, after its
	// final commit was tried.
	Released func(topic string, partition int)
}

type contextKey struct{}

// WithHooks returns a copy of ctx that carries h: a Server started with it
// calls h.
func WithHooks(ctx context.Context, h Hooks) context.Context {
	return context.WithValue(ctx, contextKey{}, h)
}

// FromContext returns the hooks ctx carries; none when it carries none.
func FromContext(ctx context.Context) Hooks {
	h, _ := ctx.Value(contextKey{}).(Hooks)
	return h
}
