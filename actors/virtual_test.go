package actors

import (
	"fmt"
	"testing"
)

func TestReducerIsConsistentAndCapped(t *testing.T) {
	for _, slots := range []int{1, 5, 14} {
		r := newReducer(slots)
		again := newReducer(slots) // another process, or after a restart
		used := map[string]bool{}
		for i := range 10_000 {
			key := fmt.Sprintf("user-%d", i)
			vp := r.Reduce([]byte(key))
			if vp != again.Reduce([]byte(key)) || vp != r.Reduce([]byte(key)) {
				t.Fatalf("slots=%d: key %q maps to different virtual partitions", slots, key)
			}
			used[vp] = true
		}
		if len(used) != slots {
			t.Errorf("slots=%d: 10,000 keys used %d virtual partitions, want exactly %d", slots, len(used), slots)
		}
	}
}

func FuzzReducer(f *testing.F) {
	f.Add("user-1", 5)
	f.Add("", 1)
	f.Fuzz(func(t *testing.T, key string, slots int) {
		if slots <= 0 || slots > 10_000 {
			return
		}
		r := newReducer(slots)
		if s := r.Slot([]byte(key)); s < 0 || s >= slots {
			t.Fatalf("slot %d out of [0,%d)", s, slots)
		}
		if r.Reduce([]byte(key)) != newReducer(slots).Reduce([]byte(key)) {
			t.Fatal("not consistent")
		}
	})
}
