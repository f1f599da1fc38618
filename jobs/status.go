package jobs

import (
	"time"

	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/internal/executor"
	"github.com/ordo-go/ordo/internal/metrics"
	"github.com/ordo-go/ordo/internal/status"
)

// The defaults of the status reports (Config.StatusTopic,
// Config.StatusInterval).
const (
	DefaultStatusTopic    = "__ordo_status"
	DefaultStatusInterval = 5 * time.Second
)

// newTally counts the jobs of the kinds ws has workers for, and the others
// as "unknown".
func newTally(ws *Workers) *status.Tally {
	return status.NewTally(executor.Kinds(ws))
}

func newStatusReporter(s *Server, t *status.Tally) *status.Reporter {
	cfg := s.cfg
	rf, create := 1, cfg.CreateTopics != nil
	if create {
		rf = cfg.CreateTopics.ReplicationFactor
	}
	return status.NewReporter(status.ReporterConfig{
		Producer: s.dlq, Admin: cfg.admin(), Source: (*serverStats)(s), Tally: t,
		Log: cfg.Logger, Topic: cfg.StatusTopic, Interval: cfg.StatusInterval, Create: create, ReplicationFactor: rf,
		Group: cfg.Group, InstanceID: cfg.InstanceID, Topics: cfg.Topics, DeadLetterTopic: cfg.DeadLetterTopic,
	})
}

// serverStats is what the status reports and the metrics read of a server.
type serverStats Server

func (s *serverStats) Group() string                  { return s.cfg.Group }
func (s *serverStats) Rebalances() int64              { return s.records.Generations() }
func (s *serverStats) Stats() []actors.PartitionStats { return s.records.Runtime().Stats() }

func (s *serverStats) Schedules() []metrics.Schedule {
	var out []metrics.Schedule
	for _, p := range (*Server)(s).Schedules() {
		out = append(out, metrics.Schedule{Topic: p.Topic, Partition: p.Partition, Pending: p.Pending})
	}
	return out
}
