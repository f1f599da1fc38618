package actors

import (
	"context"
	"fmt"
	"runtime/debug"
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
}

// Receive implements actor.Actor.
func (k *KeyActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
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
		err := k.call(r)
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
func (k *KeyActor) call(r *kafka.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	ctx := context.WithValue(k.rt.ctx, partitionKey{}, k.p)
	return k.rt.cfg.Handler(ctx, *r)
}

// PanicError is the error a handler's panic turns into.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

type partitionKey struct{}

// Revoked tells a running handler whether its partition was revoked (or the
// member is stopping) since it started: a long job may use it to stop early.
func Revoked(ctx context.Context) bool {
	p, ok := ctx.Value(partitionKey{}).(*partitionState)
	if !ok {
		return false
	}
	select {
	case <-p.revokedCh:
		return true
	default:
		return false
	}
}

// GenerationID returns the group generation in which the handler's record was
// fetched; 0 outside a handler.
func GenerationID(ctx context.Context) int32 {
	if p, ok := ctx.Value(partitionKey{}).(*partitionState); ok {
		return p.generation
	}
	return 0
}

// RevokedChan returns a channel closed when the handler's partition is
// revoked; nil (never ready) outside a handler.
func RevokedChan(ctx context.Context) <-chan struct{} {
	if p, ok := ctx.Value(partitionKey{}).(*partitionState); ok {
		return p.revokedCh
	}
	return nil
}
