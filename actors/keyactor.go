package actors

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/kafka"
)

// KeyActor runs the records of one virtual-partition key, one at a time, in
// the order its supervisor sent them (offset order). It holds one of the
// process's concurrency slots only while a handler runs, so a slow or
// retrying key never keeps other keys from free slots.
type KeyActor struct {
	rt  *Runtime
	p   *partitionState
	key string

	// ctx and longCtx are built once per actor so that calling a handler
	// allocates no context.
	ctx, longCtx context.Context
	attempt      atomic.Int32
	runningLong  atomic.Bool
	state        KeyState
}

// Receive implements actor.Actor.
func (k *KeyActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		k.ctx = context.WithValue(k.rt.ctx, keyActorKey{}, k)
		k.longCtx = context.WithValue(k.p.longCtx, keyActorKey{}, k)
		ctx.SetReceiveTimeout(k.rt.cfg.IdleTimeout)
	case *run:
		if k.process(m.record) {
			ctx.Send(ctx.Parent(), &finished{key: k.key, seq: m.seq})
		}
	case *actor.ReceiveTimeout:
		ctx.Send(ctx.Parent(), &idle{key: k.key})
	case *actor.Stopping:
		ctx.Send(ctx.Parent(), &keyStopped{key: k.key})
	}
}

// process runs the record until it succeeds or the retry policy gives up
// (true), or drops it because the partition was revoked (false): a dropped
// record is neither run nor committed.
func (k *KeyActor) process(r *kafka.Record) bool {
	long := k.rt.cfg.LongRunning != nil && k.rt.cfg.LongRunning(r)
	for attempt := 1; ; attempt++ {
		select {
		case k.rt.slots <- struct{}{}:
		case <-k.p.revokedCh:
			return false
		}
		if !k.p.begin(r.Offset, k.key) {
			<-k.rt.slots
			return false
		}
		k.attempt.Store(int32(attempt))
		k.runningLong.Store(long)
		err := k.call(r, long)
		k.runningLong.Store(false)
		k.p.end(r.Offset)
		<-k.rt.slots
		if err == nil {
			return true
		}
		delay, retry := k.rt.cfg.Retry(attempt, err)
		log := k.rt.cfg.Logger.With("topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"key", k.key, "attempt", attempt, "err", err)
		if !retry {
			log.Error("ordo: record failed; giving up")
			return true
		}
		log.Warn("ordo: record failed; retrying", "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-k.p.revokedCh:
			t.Stop()
			return false
		}
	}
}

// call runs the handler; a panic becomes an error carrying its stack, so one
// bad record fails like any other instead of taking the process down.
func (k *KeyActor) call(r *kafka.Record, long bool) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	ctx := k.ctx
	if long {
		ctx = k.longCtx
	}
	return k.rt.cfg.Handler(ctx, *r)
}

// PanicError is the error a handler's panic turns into.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

type keyActorKey struct{}

func keyActorOf(ctx context.Context) *KeyActor {
	k, _ := ctx.Value(keyActorKey{}).(*KeyActor)
	return k
}

// Revoked tells a running handler whether its partition was revoked (or the
// member is stopping) since it started: a long job may use it to stop early.
func Revoked(ctx context.Context) bool {
	k := keyActorOf(ctx)
	return k != nil && k.p.isRevoked()
}

// RevokedChan returns a channel closed when the handler's partition is
// revoked; nil (never ready) outside a handler.
func RevokedChan(ctx context.Context) <-chan struct{} {
	if k := keyActorOf(ctx); k != nil {
		return k.p.revokedCh
	}
	return nil
}

// GenerationID returns the group generation in which the handler's record was
// fetched; 0 outside a handler.
func GenerationID(ctx context.Context) int32 {
	if k := keyActorOf(ctx); k != nil {
		return k.p.generation
	}
	return 0
}

// Attempt returns which run of the current record this is, from 1; 0 outside
// a handler.
func Attempt(ctx context.Context) int {
	if k := keyActorOf(ctx); k != nil {
		return int(k.attempt.Load())
	}
	return 0
}

// VirtualKey returns the virtual-partition key the handler's record runs
// under; "" outside a handler.
func VirtualKey(ctx context.Context) string {
	if k := keyActorOf(ctx); k != nil {
		return k.key
	}
	return ""
}

// KeyState is state that lives as long as a key's actor: it is created empty
// when the actor spawns and dropped when the actor is passivated or its
// partition is revoked. Only the key's handlers see it, one at a time, so it
// needs no locking; it must not be used outside the handler's goroutine.
type KeyState struct {
	values map[any]any
}

// Get returns the value stored under name.
func (s *KeyState) Get(name any) (any, bool) {
	v, ok := s.values[name]
	return v, ok
}

// Set stores v under name.
func (s *KeyState) Set(name, v any) {
	if s.values == nil {
		s.values = map[any]any{}
	}
	s.values[name] = v
}

// KeyStateOf returns the state of the key the handler runs for; nil outside a
// handler.
func KeyStateOf(ctx context.Context) *KeyState {
	if k := keyActorOf(ctx); k != nil {
		return &k.state
	}
	return nil
}
