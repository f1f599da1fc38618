package enqueue

import (
	"maps"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// Options is what the options of one enqueue call set; jobs.EnqueueOption is
// a func over it.
type Options struct {
	Topic           string
	TopicSet        bool
	Key             string
	KeySet          bool
	PartitionKey    string
	PartitionKeySet bool
	Headers         map[string]string
	Metadata        map[string]string
	// RunAt, when set, is when the job should run (WithRunAt); Delay is
	// WithDelay's, resolved against the enqueue time.
	RunAt    time.Time
	RunAtSet bool
	Delay    time.Duration
	DelaySet bool
	// ID and OrdoHeaders are set by ordo itself (periodic jobs): a job id
	// to use rather than a new one, and headers of ordo's own, which
	// WithHeaders refuses.
	ID          string
	OrdoHeaders []kafka.Header
	// Periodic is what only jobs.Periodic takes; an enqueue call refuses
	// it.
	Periodic Periodic
}

// Periodic is what PeriodicName and PeriodicMissedTicks set.
type Periodic struct {
	Name      string
	NameSet   bool
	Missed    int // a jobs.MissedTicks
	MissedSet bool
}

// Collect applies opts, skipping nil ones, to fresh options.
func Collect[O ~func(*Options)](opts []O) Options {
	var o Options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// Merge copies from into into, later values winning, and returns into,
// made if it was nil: WithHeaders and WithMetadata merge over calls.
func Merge(into, from map[string]string) map[string]string {
	if into == nil {
		into = make(map[string]string, len(from))
	}
	maps.Copy(into, from)
	return into
}

// periodicOnly names the first option set that only jobs.Periodic takes;
// "" when there is none.
func (o *Options) periodicOnly() string {
	switch {
	case o.Periodic.NameSet:
		return "PeriodicName"
	case o.Periodic.MissedSet:
		return "PeriodicMissedTicks"
	}
	return ""
}
