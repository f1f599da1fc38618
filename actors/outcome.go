package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Outcome tells the runtime what to do with a record after one run of its
// handler. The zero Outcome is Done.
type Outcome struct {
	action action
	delay  time.Duration
}

type action uint8

const (
	actionDone action = iota
	actionRetry
	actionHold
)

// Done says the record finished: it counts towards the committable offset,
// and its key goes on with its next record.
func Done() Outcome { return Outcome{} }

// Retry runs the record again after the delay, as its next attempt. Its key
// waits meanwhile: no later record of the key starts. The waiting key holds
// no concurrency slot and no goroutine, so other keys use them; a
// revocation reaches it at once, and the record is then dropped, not
// committed.
func Retry(after time.Duration) Outcome { return Outcome{action: actionRetry, delay: max(after, 0)} }

// Hold keeps the record's key waiting after the handler returns, without a
// slot or a goroutine, until Release.Finish is called (from any goroutine):
// for work that goes on elsewhere, such as writing the record to a
// dead-letter topic. Call it from inside the handler and return the Outcome.
// A held record is not in flight: a revocation does not wait for it, and
// drops it uncommitted, so the partition's next owner runs it again.
func Hold(ctx context.Context) (Outcome, Release) {
	k := keyActorOf(ctx)
	if k == nil || k.current == nil {
		panic("actors: Hold called outside a handler")
	}
	return Outcome{action: actionHold}, Release{k: k, offset: k.current.rec.Offset}
}

// Release ends a Hold. It is a small value; copy it freely.
type Release struct {
	k      *keyActor
	offset int64
}

// Finish says the held record finished: it becomes committable, and its key
// goes on. Calls after the first, or after the partition was revoked, do
// nothing.
func (r Release) Finish() {
	if r.k == nil || r.k.p.isRevoked() {
		return
	}
	r.k.p.rt.system.Root.Send(r.k.self, &released{offset: r.offset})
}

// Revoked is closed when the held record's partition is revoked: the record
// was dropped and its next owner runs it again, so finishing it no longer
// matters.
func (r Release) Revoked() <-chan struct{} {
	if r.k == nil {
		return nil
	}
	return r.k.p.revokedCh
}

// Messages of a key actor besides the records (*job) themselves.
type (
	retryDue  struct{ offset int64 }
	released  struct{ offset int64 }
	runQueued struct{}
)

var _ actor.Actor = (*keyActor)(nil)
