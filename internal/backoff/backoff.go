// Package backoff is ordo's one exponential back-off: every wait that doubles
// after a failure (job retries, fetch and join retries, dead-letter writes)
// is computed here, so that they cannot drift apart.
package backoff

import "time"

// Delay is the wait after the attempt-th consecutive failure (attempts count
// from 1): initial, doubling each attempt, never above limit. It does not
// overflow however large attempt is.
func Delay(initial, limit time.Duration, attempt int) time.Duration {
	d := initial
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
