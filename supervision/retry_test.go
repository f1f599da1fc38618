package supervision

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestBackoffDoublesToItsCap(t *testing.T) {
	cases := []struct {
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{Backoff{}, 1, time.Second},
		{Backoff{}, 2, 2 * time.Second},
		{Backoff{}, 5, 16 * time.Second},
		{Backoff{}, 6, 30 * time.Second},
		{Backoff{}, 60, 30 * time.Second},
		{Backoff{}, 1, time.Second},
		{Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}, 3, 40 * time.Millisecond},
		{Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}, 4, 50 * time.Millisecond},
	}
	for _, c := range cases {
		if got := c.b.Delay(c.attempt); got != c.want {
			t.Errorf("%+v.Delay(%d) = %v, want %v", c.b, c.attempt, got, c.want)
		}
	}
}

func TestDecide(t *testing.T) {
	boom := errors.New("boom")
	b := Backoff{Initial: time.Second, Max: 8 * time.Second}
	cases := []struct {
		name       string
		attempt    int
		err        error
		deadLetter bool
		delay      time.Duration
	}{
		{"first failure retries after the backoff", 1, boom, false, time.Second},
		{"third failure waits longer", 3, boom, false, 4 * time.Second},
		{"last attempt dead-letters", 4, boom, true, 0},
		{"permanent dead-letters at once", 1, Permanent(boom), true, 0},
		{"wrapped permanent too", 1, fmt.Errorf("ctx: %w", Permanent(boom)), true, 0},
		{"retry-after overrides the backoff", 2, RetryAfter(5*time.Millisecond, boom), false, 5 * time.Millisecond},
		{"retry-after does not extend attempts", 4, RetryAfter(time.Millisecond, boom), true, 0},
	}
	for _, c := range cases {
		d := Decide(c.attempt, 4, c.err, b)
		if d.DeadLetter != c.deadLetter || d.Delay != c.delay {
			t.Errorf("%s: got %+v", c.name, d)
		}
		if d.DeadLetter && d.Reason == "" {
			t.Errorf("%s: dead letter without a reason", c.name)
		}
	}
	if !errors.Is(Permanent(boom), boom) || !errors.Is(RetryAfter(time.Second, boom), boom) {
		t.Error("wrappers must keep the cause matchable with errors.Is")
	}
}

func TestBackoffValidate(t *testing.T) {
	if err := (Backoff{Initial: time.Second, Max: time.Millisecond}).Validate(); err == nil {
		t.Error("max below initial accepted")
	}
	if err := (Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax}).Validate(); err != nil {
		t.Error(err)
	}
}
