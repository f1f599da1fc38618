package jobs

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	processed, failed, retried, deadLettered *prometheus.CounterVec
	duration, batchSize                      *prometheus.HistogramVec
	deadLetterFailures, deadLettersDropped   prometheus.Counter
	dispatched                               *prometheus.CounterVec
	lateness                                 *prometheus.HistogramVec
	periodicFires                            *prometheus.CounterVec

	mu      sync.Mutex
	servers []*Server
}

var (
	descInFlight   = prometheus.NewDesc("ordo_jobs_in_flight", "Jobs whose Work is running.", []string{"group"}, nil)
	descRebalances = prometheus.NewDesc("ordo_rebalances_total",
		"Partition assignments the server received from its group: one for joining, then one per rebalance round (a cooperative rebalance that moves partitions has two).", []string{"group"}, nil)
	partitionLabels = []string{"group", "topic", "partition"}
	descBuffered    = prometheus.NewDesc("ordo_partition_buffered",
		"Jobs fetched from the partition and not yet finished (running, queued at their key, or done behind an unfinished one).", partitionLabels, nil)
	descPrefetched = prometheus.NewDesc("ordo_partition_prefetched",
		"Records fetched from the partition and not yet handed to their keys: the rest of the last fetch response, waiting for room under MaxBuffered.", partitionLabels, nil)
	descPartInFlight = prometheus.NewDesc("ordo_partition_in_flight", "Jobs of the partition whose Work is running.", partitionLabels, nil)
	descKeyActors    = prometheus.NewDesc("ordo_partition_key_actors", "Live key actors of the partition (idle ones are passivated).", partitionLabels, nil)
	descCommitted    = prometheus.NewDesc("ordo_partition_committed_offset", "Last offset the group committed for the partition.", partitionLabels, nil)
	descHighWater    = prometheus.NewDesc("ordo_partition_high_watermark", "The partition's end offset as last fetched.", partitionLabels, nil)
	descFallbacks    = prometheus.NewDesc("ordo_commit_metadata_fallbacks_total",
		"Commits whose jobs finished above the committed offset did not fit the commit metadata and were left out (a crash re-runs them), since the partition was assigned.", partitionLabels, nil)
	descSchedulesPending = prometheus.NewDesc("ordo_schedules_pending",
		"Scheduled jobs waiting in the schedules partition to be dispatched by this server.", partitionLabels, nil)
	descLag = prometheus.NewDesc("ordo_partition_lag", "Jobs in the partition not yet committed: high watermark minus committed offset.", partitionLabels, nil)
)

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
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind"})
	}
	m := &Metrics{
		processed:    counter("ordo_jobs_processed_total", "Job runs that succeeded."),
		failed:       counter("ordo_jobs_failed_total", "Job runs that returned an error or panicked."),
		retried:      counter("ordo_jobs_retried_total", "Failed job runs scheduled to run again."),
		deadLettered: counter("ordo_jobs_dead_lettered_total", "Jobs written to the dead-letter topic."),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordo_job_duration_seconds",
			Help:    "Duration of one run of a job's Work.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"kind"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordo_job_batch_size",
			Help:    "Jobs handed to one WorkBatch call of a BatchWorker.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"kind"}),
		deadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ordo_dead_letter_write_failures_total",
			Help: "Dead-letter writes that failed; each is tried again after a back-off while its key waits.",
		}),
		deadLettersDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ordo_dead_letters_dropped_total",
			Help: "Jobs committed without a dead letter: the broker refused it for good, also without the job's args; each is logged with its source offset.",
		}),
		dispatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ordo_scheduled_jobs_dispatched_total",
			Help: "Scheduled jobs sent to their topic when due."}, []string{"topic"}),
		lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ordo_schedule_dispatch_lateness_seconds",
			Help:    "How long after its run-at a scheduled job was sent to its topic.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"topic"}),
		periodicFires: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ordo_periodic_fires_total",
			Help: "Jobs enqueued for the ticks of a periodic job; a tick fired again after a failover counts again."}, []string{"name"}),
	}
	for _, c := range []prometheus.Collector{m.processed, m.failed, m.retried, m.deadLettered, m.duration, m.batchSize,
		m.deadLetterFailures, m.deadLettersDropped, m.dispatched, m.lateness, m.periodicFires, (*serverCollector)(m)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("jobs: NewMetrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) attach(s *Server) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.servers = append(m.servers, s)
	m.mu.Unlock()
}

// detach forgets a stopped server: its partitions are gone from the series,
// and the Metrics no longer keeps it alive.
func (m *Metrics) detach(s *Server) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.servers = slices.DeleteFunc(m.servers, func(x *Server) bool { return x == s })
	m.mu.Unlock()
}

// now is when a run starts; without metrics the clock is not read.
func (m *Metrics) now() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

func (m *Metrics) jobRan(kind string, began time.Time, err error) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(kind).Observe(time.Since(began).Seconds())
	if err == nil {
		m.processed.WithLabelValues(kind).Inc()
	} else {
		m.failed.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) batchRan(kind string, size int) {
	if m != nil {
		m.batchSize.WithLabelValues(kind).Observe(float64(size))
	}
}

func (m *Metrics) jobRetried(kind string) {
	if m != nil {
		m.retried.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) jobDeadLettered(kind string) {
	if m != nil {
		m.deadLettered.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) jobDispatched(topic string, late time.Duration) {
	if m != nil {
		m.dispatched.WithLabelValues(topic).Inc()
		m.lateness.WithLabelValues(topic).Observe(late.Seconds())
	}
}

func (m *Metrics) periodicFired(name string) {
	if m != nil {
		m.periodicFires.WithLabelValues(name).Inc()
	}
}

func (m *Metrics) deadLetterWriteFailed() {
	if m != nil {
		m.deadLetterFailures.Inc()
	}
}

func (m *Metrics) deadLetterDropped() {
	if m != nil {
		m.deadLettersDropped.Inc()
	}
}

// serverCollector reads the servers' Stats at scrape time, so the hot path
// pays nothing for these series.
type serverCollector Metrics

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInFlight, descRebalances, descBuffered, descPrefetched, descPartInFlight,
		descKeyActors, descCommitted, descHighWater, descLag, descFallbacks, descSchedulesPending} {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	servers := append([]*Server(nil), c.servers...)
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Servers of one group in one process hold disjoint partitions; their
	// process-wide series add up.
	inflight, rebalances := map[string]int{}, map[string]int64{}
	for _, s := range servers {
		group := s.cfg.Group
		rebalances[group] += s.Rebalances()
		inflight[group] += 0
		for _, p := range s.Stats() {
			labels := []string{group, p.Topic, strconv.Itoa(p.Partition)}
			inflight[group] += p.InFlight
			gauge(descBuffered, float64(p.Buffered), labels...)
			gauge(descPrefetched, float64(p.Prefetched), labels...)
			gauge(descPartInFlight, float64(p.InFlight), labels...)
			gauge(descKeyActors, float64(p.Keys), labels...)
			ch <- prometheus.MustNewConstMetric(descFallbacks, prometheus.CounterValue, float64(p.MetadataFallbacks), labels...)
			if p.Committed >= 0 {
				gauge(descCommitted, float64(p.Committed), labels...)
			}
			if p.HighWatermark >= 0 {
				gauge(descHighWater, float64(p.HighWatermark), labels...)
				if p.Committed >= 0 {
					gauge(descLag, float64(max(0, p.HighWatermark-p.Committed)), labels...)
				}
			}
		}
	}
	for _, s := range servers {
		for _, p := range s.Schedules() {
			gauge(descSchedulesPending, float64(p.Pending), s.cfg.Group, p.Topic, strconv.Itoa(p.Partition))
		}
	}
	for group, n := range inflight {
		gauge(descInFlight, float64(n), group)
		ch <- prometheus.MustNewConstMetric(descRebalances, prometheus.CounterValue, float64(rebalances[group]), group)
	}
}
