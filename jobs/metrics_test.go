package jobs_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

type metricsOK struct{ seqArgs }
type metricsFlaky struct{ seqArgs }
type metricsBroken struct{ seqArgs }

func (metricsOK) Kind() string     { return "metrics_ok" }
func (metricsFlaky) Kind() string  { return "metrics_flaky" }
func (metricsBroken) Kind() string { return "metrics_broken" }

// An operator scraping /metrics sees every job outcome by kind, the
// duration histogram, and each partition's buffer, commit position and lag.
func TestMetricsScrapedOverHTTP(t *testing.T) {
	t.Parallel()
	const okJobs = 20
	env := kafkatest.New(t)
	topic := env.Topic(t, 2)
	reg := prometheus.NewRegistry()
	metrics, err := jobs.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.NewMetrics(reg); err == nil {
		t.Error("NewMetrics registered twice with one registry without an error")
	}

	var flakyRuns atomic.Int64
	workers := jobs.NewWorkers()
	mustAdd(t, workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[metricsOK]) error { return nil }))
	mustAdd(t, workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[metricsFlaky]) error {
		if flakyRuns.Add(1) == 1 {
			return jobs.RetryAfter(10*time.Millisecond, errors.New("first run fails"))
		}
		return nil
	}))
	mustAdd(t, workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[metricsBroken]) error {
		return jobs.Permanent(errors.New("cannot ever work"))
	}))
	cfg := serverConfig(t, env, topic, workers)
	if err := env.Admin.CreateTopics(context.Background(), kafka.Topic{Name: cfg.DeadLetterTopic, Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if !env.Embedded {
		t.Cleanup(func() { _ = env.Admin.DeleteTopics(context.Background(), cfg.DeadLetterTopic) })
	}
	cfg.Metrics = metrics
	cfg.Backoff = jobs.Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	cfg.CommitInterval = 50 * time.Millisecond
	server := startJobServer(t, cfg)

	client := newClient(t, env, topic)
	ctx := context.Background()
	var params []jobs.EnqueueParams
	for i := range okJobs {
		params = append(params, jobs.EnqueueParams{Args: metricsOK{seqArgs{Key: "k" + string(rune('a'+i%4)), Seq: i}}})
	}
	params = append(params,
		jobs.EnqueueParams{Args: metricsFlaky{seqArgs{Key: "flaky"}}},
		jobs.EnqueueParams{Args: metricsBroken{seqArgs{Key: "broken"}}})
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		t.Fatal(err)
	}

	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer web.Close()
	total := float64(len(params))
	var fams map[string]*dto.MetricFamily
	// Poll until every job is committed: the lag series then read zero.
	committed := false
	defer func() {
		if !committed { // WaitFor failed the test
			t.Logf("last scrape:\n%s", dump(fams))
		}
	}()
	kafkatest.WaitFor(t, 60*time.Second, "every job to be committed (scraped)", func() bool {
		fams = scrape(t, web.URL)
		return sumOf(fams, "ordo_partition_committed_offset") == total && sumOf(fams, "ordo_partition_lag") == 0 &&
			sumOf(fams, "ordo_jobs_dead_lettered_total") == 1
	})
	committed = true
	for _, c := range []struct {
		name, kind string
		want       float64
	}{
		{"ordo_jobs_processed_total", "metrics_ok", okJobs},
		{"ordo_jobs_processed_total", "metrics_flaky", 1},
		{"ordo_jobs_failed_total", "metrics_flaky", 1},
		{"ordo_jobs_retried_total", "metrics_flaky", 1},
		{"ordo_jobs_failed_total", "metrics_broken", 1},
		{"ordo_jobs_dead_lettered_total", "metrics_broken", 1},
	} {
		if got := valueOf(fams, c.name, "kind", c.kind); got != c.want {
			t.Errorf("%s{kind=%q} = %v, want %v", c.name, c.kind, got, c.want)
		}
	}
	if got := histogramCount(fams, "ordo_job_duration_seconds", "metrics_ok"); got != okJobs {
		t.Errorf("ordo_job_duration_seconds{kind=metrics_ok} count = %d, want %d", got, okJobs)
	}
	for _, name := range []string{"ordo_partition_buffered", "ordo_partition_prefetched", "ordo_partition_in_flight", "ordo_partition_key_actors",
		"ordo_partition_committed_offset", "ordo_partition_high_watermark", "ordo_partition_lag"} {
		if n := len(fams[name].GetMetric()); n != 2 {
			t.Errorf("%s has %d series, want one per partition (2)", name, n)
		}
	}
	if got := sumOf(fams, "ordo_partition_high_watermark"); got != total {
		t.Errorf("sum of ordo_partition_high_watermark = %v, want %v", got, total)
	}
	if got := sumOf(fams, "ordo_partition_buffered"); got != 0 {
		t.Errorf("sum of ordo_partition_buffered = %v after every job finished, want 0", got)
	}
	if got := sumOf(fams, "ordo_partition_prefetched"); got != 0 {
		t.Errorf("sum of ordo_partition_prefetched = %v after every job finished, want 0", got)
	}
	if got := sumOf(fams, "ordo_jobs_in_flight"); got != 0 {
		t.Errorf("ordo_jobs_in_flight = %v after every job finished, want 0", got)
	}
	if got := sumOf(fams, "ordo_rebalances_total"); got < 1 {
		t.Errorf("ordo_rebalances_total = %v, want at least 1 (the join)", got)
	}
	if got := server.Rebalances(); got < 1 {
		t.Errorf("Server.Rebalances() = %d, want at least 1", got)
	}

	// A stopped server leaves the scrape: Metrics does not keep it.
	if err := server.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, web.URL)
	for _, name := range []string{"ordo_partition_buffered", "ordo_partition_lag", "ordo_rebalances_total"} {
		if n := len(fams[name].GetMetric()); n != 0 {
			t.Errorf("%s has %d series after the server stopped, want none:\n%s", name, n, dump(fams))
		}
	}
}

// NewMetrics registers only where it is told to: no hidden global registry.
func TestNewMetricsNeedsARegisterer(t *testing.T) {
	if _, err := jobs.NewMetrics(nil); !errors.Is(err, jobs.ErrNoRegisterer) {
		t.Fatalf("NewMetrics(nil) returned %v, want jobs.ErrNoRegisterer", err)
	}
	if err := prometheus.DefaultRegisterer.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "ordo_jobs_processed_total"})); err != nil {
		t.Fatalf("NewMetrics(nil) left ordo's metrics on the global registry: %v", err)
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func sumOf(fams map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		sum += metricValue(m)
	}
	return sum
}

func valueOf(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == value {
				return metricValue(m)
			}
		}
	}
	return -1
}

func histogramCount(fams map[string]*dto.MetricFamily, name, kind string) uint64 {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "kind" && l.GetValue() == kind && m.Histogram != nil {
				return m.Histogram.GetSampleCount()
			}
		}
	}
	return 0
}

func dump(fams map[string]*dto.MetricFamily) string {
	var b strings.Builder
	for name, d := range fams {
		if !strings.HasPrefix(name, "ordo_") {
			continue
		}
		for _, m := range d.GetMetric() {
			b.WriteString(name + " " + m.String() + "\n")
		}
	}
	return b.String()
}
