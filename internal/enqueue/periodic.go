package enqueue

import (
	"errors"
	"fmt"
	"time"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/kafka"
)

// CheckPeriodic checks one of a server's periodic jobs, as jobs.Periodic
// was given it, and returns its name (the args' kind unless named), its
// schedule and its topic. names holds the names of the jobs before it, by
// index; missed is a jobs.MissedTicks, 0 (run once) or 1 (skip).
func CheckPeriodic(spec string, args Args, name string, missed int, o *Options, defaultTopic string, minInterval time.Duration, names map[string]int) (string, schedule.Spec, string, error) {
	var sched schedule.Spec
	if Nil(args) {
		return "", sched, "", errors.New("args are nil")
	}
	if name == "" {
		name = args.Kind()
	}
	if name == "" {
		return "", sched, "", fmt.Errorf("%T.Kind() is empty and PeriodicName is not given", args)
	}
	if j, ok := names[name]; ok {
		return "", sched, "", fmt.Errorf("the name %q is also [%d]'s; give one a PeriodicName", name, j)
	}
	if missed != 0 && missed != 1 {
		return "", sched, "", fmt.Errorf("PeriodicMissedTicks(%d): want MissedRunOnce or MissedSkip", missed)
	}
	sched, err := schedule.ParseSpec(spec, minInterval)
	if err != nil {
		return "", sched, "", err
	}
	if o.RunAtSet || o.DelaySet {
		return "", sched, "", errors.New("WithRunAt and WithDelay do not apply: the spec says when it runs")
	}
	msg, _, err := Prepare(defaultTopic, args, o, time.Now(), nil)
	if err != nil {
		return "", sched, "", err
	}
	return name, sched, msg.Topic, nil
}

// PeriodicDraft builds the run of the periodic job name for tick: its id
// derives from the name and the tick, and the header tickHeader carries
// the tick.
func PeriodicDraft(topic string, args Args, o Options, name, tickHeader string, tick, now time.Time) (Draft, error) {
	tickText := tick.UTC().Format(time.RFC3339Nano)
	o.ID = envelope.DerivedID(tick, name+"\x00"+tickText)
	o.OrdoHeaders = []kafka.Header{{Key: tickHeader, Value: []byte(tickText)}}
	return NewDraft(topic, args, &o, now.UTC(), nil)
}
