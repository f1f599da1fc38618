package jobs

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordo-go/ordo/internal/metrics"
)

// Metrics exports what servers do as Prometheus metrics. Build it once per
// registry and give it to every Server of the process through
// Config.Metrics:
//
//	metrics, err := jobs.NewMetrics(prometheus.DefaultRegisterer)
//	server, err := jobs.NewServer(jobs.Config{..., Metrics: metrics})
//	http.Handle("/metrics", promhttp.Handler())
//
// Job series, by kind (kinds without a worker count as "unknown", so that
// bad input cannot grow the series without bound):
//
//	ordo_jobs_processed_total        runs that succeeded
//	ordo_jobs_failed_total           runs that returned an error or panicked
//	ordo_jobs_retried_total          failed runs scheduled to run again
//	ordo_jobs_dead_lettered_total    jobs written to the dead-letter topic
//	ordo_job_duration_seconds        histogram of one run's duration (for a
//	                                 BatchWorker's jobs, their batch's call)
//	ordo_job_batch_size              histogram of the jobs in one WorkBatch
//	                                 call
//
// Without a kind:
//
//	ordo_dead_letter_write_failures_total  dead-letter writes that failed (each
//	                                       is tried again; its key waits)
//	ordo_dead_letters_dropped_total        jobs committed without a dead letter:
//	                                       the broker refused it for good, also
//	                                       without the job's args (logged with
//	                                       the job's source offset)
//
// Scheduled jobs, by the topic they are dispatched to:
//
//	ordo_scheduled_jobs_dispatched_total      scheduled jobs sent to their topic
//	ordo_schedule_dispatch_lateness_seconds   histogram of how long after its
//	                                          run-at each job was sent
//
// Periodic jobs, by name:
//
//	ordo_periodic_fires_total                 jobs enqueued for a periodic job's
//	                                          ticks (a tick fired again after a
//	                                          failover counts again)
//
// Server series, read from the servers' Stats at scrape time, by group (and
// topic and partition for the partition series):
//
//	ordo_jobs_in_flight              jobs whose Work is running
//	ordo_partition_buffered          jobs fetched and not yet finished
//	ordo_partition_in_flight         jobs running
//	ordo_partition_key_actors        live key actors
//	ordo_partition_committed_offset  last committed offset
//	ordo_partition_high_watermark    end offset as last fetched
//	ordo_partition_lag               high watermark minus committed offset
//	ordo_rebalances_total            assignments received (join + rebalance rounds)
//	ordo_schedules_pending           jobs waiting in a schedules partition this
//	                                 server dispatches
type Metrics struct {
	set *metrics.Set
}

// ErrNoRegisterer is returned by NewMetrics(nil): ordo registers nothing on
// a registry the caller did not choose. Pass prometheus.DefaultRegisterer to
// use the global one.
var ErrNoRegisterer = errors.New("jobs: NewMetrics needs a prometheus.Registerer (pass prometheus.DefaultRegisterer for the global one)")

// NewMetrics creates ordo's metrics and registers them with reg, which is
// required. Registering twice with one registry fails.
//
//	reg := prometheus.NewRegistry()
//	metrics, err := jobs.NewMetrics(reg)
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, ErrNoRegisterer
	}
	set, err := metrics.New(reg)
	if err != nil {
		return nil, fmt.Errorf("jobs: NewMetrics: %w", err)
	}
	return &Metrics{set: set}, nil
}

// series is m's Set; nil, which records nothing, when m is.
func (m *Metrics) series() *metrics.Set {
	if m == nil {
		return nil
	}
	return m.set
}
