package actors

import "context"

type keyActorKey struct{}

func keyActorOf(ctx context.Context) *keyActor {
	k, _ := ctx.Value(keyActorKey{}).(*keyActor)
	return k
}

// NewKeyContext returns a context that carries the state of one key, as a
// handler's context inside a keyActor does, but without a runtime: for
// calling handlers directly in unit tests. Every handler given it (or a
// context derived from it) sees the same KeyState; Revoked is false,
// VirtualKey is key.
func NewKeyContext(parent context.Context, key string) context.Context {
	k := &keyActor{key: key, p: &partition{revocation: revocation{revokedCh: make(chan struct{})}}}
	return context.WithValue(parent, keyActorKey{}, k)
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

// VirtualKey returns the virtual-partition key the handler's record runs
// under; "" outside a handler.
func VirtualKey(ctx context.Context) string {
	if k := keyActorOf(ctx); k != nil {
		return k.key
	}
	return ""
}

// KeyState is state that lives as long as a key's actor: it is created empty
// when the actor spawns and dropped when the actor is passivated (idle for
// IdleTimeout, or the least recently used idle key when the process holds
// MaxIdleKeys idle keys) or its partition is revoked. Only the key's
// handlers see it, one at a time, so it needs no locking; it must not be
// used outside the handler's goroutine.
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
