package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec says when a periodic job ticks.
type Spec interface {
	// Next returns the first tick after t; zero when there is none.
	Next(t time.Time) time.Time
}

// everySchedule ticks at the multiples of d since the Unix epoch, so every
// server computes the same ticks.
type everySchedule struct{ d time.Duration }

func (e everySchedule) Next(t time.Time) time.Time {
	n := t.UnixNano()
	next := n - n%int64(e.d) + int64(e.d)
	if n < 0 && n%int64(e.d) != 0 {
		next -= int64(e.d)
	}
	return time.Unix(0, next).UTC()
}

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec reads a periodic job's spec (see jobs.Periodic): cron syntax, or
// "@every <duration>" of at least minInterval.
func ParseSpec(spec string, minInterval time.Duration) (Spec, error) {
	if rest, ok := strings.CutPrefix(spec, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("spec %q: %w", spec, err)
		}
		if d < minInterval {
			return nil, fmt.Errorf("spec %q: the interval must be at least %v", spec, minInterval)
		}
		return everySchedule{d}, nil
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("spec %q: %w", spec, err)
	}
	return s, nil
}
