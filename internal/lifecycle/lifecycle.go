// Package lifecycle orders a server's Start against its Stop: a server
// starts once, a failed Start may be tried again, a Stop during a Start ends
// that Start's context at once, and after a Stop nothing starts. Package
// server (under jobs.Server) runs its Start and Stop through a Once; the
// errors a Once returns are the ones jobs gives to server.New.
package lifecycle

import (
	"context"
	"sync"
	"time"
)

// Once is the start-once state of one server.
type Once struct {
	errStopped, errStarted error

	mu       sync.Mutex
	starting bool // a Start is under way or succeeded
	stopped  bool // Stop was called
	// abort ends the context of a Start under way, with errStopped as its
	// cause; nil when no Start is.
	abort context.CancelCauseFunc
}

// New returns the state of a server not started yet. Start returns
// errStopped after Stop, and errStarted during or after a Start that
// succeeded.
func New(errStopped, errStarted error) *Once {
	return &Once{errStopped: errStopped, errStarted: errStarted}
}

// Start runs start with ctx, which a Stop ends with errStopped as its cause
// and which, when it has no deadline, ends after timeout with timeoutCause.
// start takes its effect through Commit, so that a Stop meanwhile leaves
// nothing running.
func (o *Once) Start(ctx context.Context, timeout time.Duration, timeoutCause error, start func(context.Context) error) error {
	o.mu.Lock()
	switch {
	case o.stopped:
		o.mu.Unlock()
		return o.errStopped
	case o.starting:
		o.mu.Unlock()
		return o.errStarted
	}
	o.starting = true
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	o.abort = abort
	o.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, timeoutCause)
		defer cancel()
	}
	err := start(ctx)
	o.mu.Lock()
	o.abort = nil
	if err != nil {
		o.starting = false // a failed Start may be tried again
	}
	o.mu.Unlock()
	return err
}

// Commit runs f, which starts what Stop will stop, unless Stop was called;
// Stop waits for it.
func (o *Once) Commit(f func() error) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return o.errStopped
	}
	return f()
}

// Stop marks the server stopped and ends the context of a Start under way.
func (o *Once) Stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	if o.abort != nil {
		o.abort(o.errStopped)
	}
}
