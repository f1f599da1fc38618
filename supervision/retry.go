package supervision

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ordo-go/ordo/internal/backoff"
)

// Backoff is the one exponential backoff policy: Initial, doubling on each
// attempt, capped at Max. A zero Initial is DefaultBackoffInitial; a zero Max
// is DefaultBackoffMax, or Initial when that is larger.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// The default backoff waits 1 s after the first failure, doubling to 30 s,
// like Karafka's pause defaults.
const (
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 30 * time.Second
)

// DefaultMaxAttempts is how many times a job runs before it is dead-lettered:
// the first run and three retries, like Karafka's dead-letter default
// (max_retries 3). With the default backoff the last retry starts about 7 s
// after the first failure.
const DefaultMaxAttempts = 4

// Delay is the wait after the attempt-th failure (attempts count from 1).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.orDefault()
	return backoff.Delay(b.Initial, b.Max, attempt)
}

func (b Backoff) orDefault() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = max(DefaultBackoffMax, b.Initial)
	}
	return b
}

// Validate reports a backoff whose cap is below its start.
func (b Backoff) Validate() error {
	if b.Initial < 0 || b.Max < 0 {
		return fmt.Errorf("backoff durations must not be negative (initial %v, max %v)", b.Initial, b.Max)
	}
	if b.Initial > 0 && b.Max > 0 && b.Max < b.Initial {
		return fmt.Errorf("backoff max %v is below its initial %v", b.Max, b.Initial)
	}
	return nil
}

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that its job is dead-lettered at once, without
// retries.
func Permanent(err error) error {
	if err == nil {
		err = errors.New("permanent failure")
	}
	return &PermanentError{Err: err}
}

// RetryAfterError asks for the next attempt after Delay instead of the
// backoff's wait.
type RetryAfterError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %v: %v", e.Delay, e.Err)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter wraps err so that its job runs again after d (while attempts
// remain).
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	return &RetryAfterError{Delay: d, Err: err}
}

// Decision is what to do after a failed attempt.
type Decision struct {
	// DeadLetter: give up and send the job to the dead-letter topic,
	// for Reason. Otherwise retry after Delay.
	DeadLetter bool
	Reason     string
	Delay      time.Duration
}

// Decide answers what follows the attempt-th failure of a job allowed
// maxAttempts runs.
func Decide(attempt, maxAttempts int, err error, b Backoff) Decision {
	var perm *PermanentError
	if errors.As(err, &perm) {
		// The reason says "permanent" once: err's text with perm's own
		// "permanent: " taken out, wherever err's wrapping put it.
		msg := strings.Replace(err.Error(), perm.Error(), perm.Err.Error(), 1)
		return Decision{DeadLetter: true, Reason: "permanent error: " + msg}
	}
	if attempt >= maxAttempts {
		return Decision{DeadLetter: true, Reason: fmt.Sprintf("attempts exhausted (%d of %d): %v", attempt, maxAttempts, err)}
	}
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return Decision{Delay: max(ra.Delay, 0)}
	}
	return Decision{Delay: b.Delay(attempt)}
}
