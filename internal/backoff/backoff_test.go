package backoff

import (
	"testing"
	"time"
)

func TestDelayDoublesToItsLimit(t *testing.T) {
	cases := []struct {
		initial, limit time.Duration
		attempt        int
		want           time.Duration
	}{
		{time.Second, 30 * time.Second, 0, time.Second},
		{time.Second, 30 * time.Second, 1, time.Second},
		{time.Second, 30 * time.Second, 2, 2 * time.Second},
		{time.Second, 30 * time.Second, 5, 16 * time.Second},
		{time.Second, 30 * time.Second, 6, 30 * time.Second},
		{time.Second, 30 * time.Second, 1 << 30, 30 * time.Second},
		{50 * time.Millisecond, 5 * time.Second, 3, 200 * time.Millisecond},
		{time.Minute, time.Second, 1, time.Second},
	}
	for _, c := range cases {
		if got := Delay(c.initial, c.limit, c.attempt); got != c.want {
			t.Errorf("Delay(%v, %v, %d) = %v, want %v", c.initial, c.limit, c.attempt, got, c.want)
		}
	}
}
