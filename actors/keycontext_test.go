package actors_test

import (
	"context"
	"testing"

	"github.com/ordo-go/ordo/actors"
)

func TestNewKeyContextCarriesOneKeysStateOutsideTheRuntime(t *testing.T) {
	ctx := actors.NewKeyContext(context.Background(), "acct-1")
	actors.KeyStateOf(ctx).Set("n", 1)
	derived, cancel := context.WithCancel(ctx)
	defer cancel()
	if v, ok := actors.KeyStateOf(derived).Get("n"); !ok || v != 1 {
		t.Errorf("a derived context sees %v, %v; want the same state", v, ok)
	}
	if actors.Revoked(ctx) || actors.VirtualKey(ctx) != "acct-1" || actors.RevokedChan(ctx) == nil {
		t.Errorf("Revoked %v, VirtualKey %q", actors.Revoked(ctx), actors.VirtualKey(ctx))
	}
	if _, ok := actors.KeyStateOf(actors.NewKeyContext(context.Background(), "acct-1")).Get("n"); ok {
		t.Error("a new key context shares state with another")
	}
}
