// Package metrics is ordo's Prometheus series: the counters and histograms
// the servers' jobs add to, and a collector that reads each server's
// partitions at scrape time, so the hot path pays nothing for those. The
// series are documented on jobs.Metrics, the public face of a Set.
package metrics

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordo-go/ordo/actors"
)

// Source is what the collector reads of a server at scrape time.
type Source interface {
	Group() string
	// Rebalances counts the assignments the server received.
	Rebalances() int64
	// Stats are the partitions it holds.
	Stats() []actors.PartitionStats
	// Schedules are the schedules partitions it dispatches.
	Schedules() []Schedule
}

// Schedule is one schedules partition a server dispatches.
type Schedule struct {
	Topic     string
	Partition int
	Pending   int
}

// Set is one registry's series. A nil Set records nothing, and does not
// read the clock.
type Set struct {
	processed, failed, retried, deadLettered *prometheus.CounterVec
	duration, batchSize                      *prometheus.HistogramVec
	deadLetterFailures, deadLettersDropped   prometheus.Counter
	dispatched                               *prometheus.CounterVec
	lateness                                 *prometheus.HistogramVec
	periodicFires                            *prometheus.CounterVec

	mu      sync.Mutex
	sources []Source
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

// New creates the series and registers them with reg.
func New(reg prometheus.Registerer) (*Set, error) {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind"})
	}
	m := &Set{
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
		m.deadLetterFailures, m.deadLettersDropped, m.dispatched, m.lateness, m.periodicFires, (*collector)(m)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Attach has the collector read src at every scrape.
func (m *Set) Attach(src Source) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.sources = append(m.sources, src)
	m.mu.Unlock()
}

// Detach forgets a stopped server: its partitions are gone from the series,
// and the Set no longer keeps it alive.
func (m *Set) Detach(src Source) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.sources = slices.DeleteFunc(m.sources, func(x Source) bool { return x == src })
	m.mu.Unlock()
}

// Now is when a run starts; without metrics the clock is not read.
func (m *Set) Now() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

// JobRan records a run of kind that began at began and returned err.
func (m *Set) JobRan(kind string, began time.Time, err error) {
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

// BatchRan records a WorkBatch call of size jobs of kind.
func (m *Set) BatchRan(kind string, size int) {
	if m != nil {
		m.batchSize.WithLabelValues(kind).Observe(float64(size))
	}
}

// JobRetried records a failed run of kind that will run again.
func (m *Set) JobRetried(kind string) {
	if m != nil {
		m.retried.WithLabelValues(kind).Inc()
	}
}

// JobDeadLettered records a dead letter of kind written.
func (m *Set) JobDeadLettered(kind string) {
	if m != nil {
		m.deadLettered.WithLabelValues(kind).Inc()
	}
}

// JobDispatched records a scheduled job sent to topic late after its run-at.
func (m *Set) JobDispatched(topic string, late time.Duration) {
	if m != nil {
		m.dispatched.WithLabelValues(topic).Inc()
		m.lateness.WithLabelValues(topic).Observe(late.Seconds())
	}
}

// PeriodicFired records a job enqueued for a tick of the periodic job name.
func (m *Set) PeriodicFired(name string) {
	if m != nil {
		m.periodicFires.WithLabelValues(name).Inc()
	}
}

// DeadLetterWriteFailed records a failed dead-letter write.
func (m *Set) DeadLetterWriteFailed() {
	if m != nil {
		m.deadLetterFailures.Inc()
	}
}

// DeadLetterDropped records a dead letter given up.
func (m *Set) DeadLetterDropped() {
	if m != nil {
		m.deadLettersDropped.Inc()
	}
}

// collector reads the sources at scrape time.
type collector Set

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInFlight, descRebalances, descBuffered, descPrefetched, descPartInFlight,
		descKeyActors, descCommitted, descHighWater, descLag, descFallbacks, descSchedulesPending} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := slices.Clone(c.sources)
	c.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Servers of one group in one process hold disjoint partitions; their
	// process-wide series add up.
	inflight, rebalances := map[string]int{}, map[string]int64{}
	for _, s := range sources {
		group := s.Group()
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
	for _, s := range sources {
		for _, p := range s.Schedules() {
			gauge(descSchedulesPending, float64(p.Pending), s.Group(), p.Topic, strconv.Itoa(p.Partition))
		}
	}
	for group, n := range inflight {
		gauge(descInFlight, float64(n), group)
		ch <- prometheus.MustNewConstMetric(descRebalances, prometheus.CounterValue, float64(rebalances[group]), group)
	}
}
