package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
)

// TestMain lets S4 and S6 re-run this test binary as their measured child
// process.
func TestMain(m *testing.M) {
	if isChild() {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// TestQuickRun runs the whole harness with -quick against the test broker:
// every scenario prints its summary lines and the table and charts are
// written. It checks that the harness works, not the figures.
func TestQuickRun(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var summary, progress bytes.Buffer
	// The test checks the wiring, not the figures, so every scenario runs
	// a fraction of -quick's sizes (under the race detector -quick takes
	// two minutes, most of it S6's 200,000 keys, S4's 80,000-job backlog
	// and S9's 50,000 pending jobs). The sizes that name a line (S4's
	// backlogs, S6's keys, S9's jobs, window and pending) are asserted as
	// tuned. A one-record backlog costs a produce request per job, and S15
	// runs for a fixed time: both stay short. S4's slower jobs keep the
	// one-record backlog from draining within the window, so that S4
	// amplification finds records held at its end. S9's lead stays well
	// above the time its enqueue takes on a loaded machine.
	tune := func(s *sizes) {
		s.s1Jobs = 5_000
		s.s2Jobs = 300
		s.s3Jobs = 200
		s.s4Backlogs, s.s4Keys, s.s4Window = []int{4_000, 8_000}, 2_000, time.Second
		s.s4OneRecordBacklogs, s.s4Work = []int{1_000, 2_000}, 200*time.Millisecond
		s.s6Marks = []int{2_000, 20_000}
		s.s7Jobs = 2_000
		s.s8Warmup, s.s8Steady = 200*time.Millisecond, 500*time.Millisecond
		s.s9Jobs, s.s9Pending, s.s9Window, s.s9Lead = 1_000, 5_000, time.Second, 3*time.Second
		s.s11Jobs = 2_000
		s.s15CapacityJobs, s.s15Duration = 1_000, time.Second
	}
	err := run(ctx, options{quick: true, out: out, tune: tune}, target{Name: env.Name, Brokers: env.Brokers}, &summary, &progress)
	if err != nil {
		t.Fatalf("bench -quick: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("summary:\n%s", summary.String())
	num := `[0-9]+(\.[0-9]+)?`
	broker := regexp.QuoteMeta(env.Name)
	want := []string{
		`bench S1 raw=` + num + ` jobs/s decode=` + num + ` jobs/s naive=` + num + ` jobs/s ordo=` + num +
			` jobs/s allocs=` + num + `/job args_allocs=` + num + `/job broker=` + broker + ` ratio=` + num,
	}
	for _, c := range []string{"1", "5", "10", "14", "100"} {
		want = append(want, `bench S2 c=`+c+`: ordo=`+num+` jobs/s reader_pool=`+num+` jobs/s bound=`+num+` pool=`+num+` broker=`+broker+` ratio=`+num)
	}
	for _, k := range []string{"1", "2", "5", "10", "20", "1000", "10000"} {
		want = append(want, `bench S3 keys=`+k+`: ordo=`+num+` s bound=`+num+` s floor=`+num+` broker=`+broker+` ratio=`+num)
	}
	for _, k := range []string{"1000", "10000"} {
		want = append(want, `bench S3 blocking keys=`+k+`: ordo=`+num+` s goroutines=`+num+` s broker=`+broker+` ratio=`+num)
	}
	for _, n := range []string{"4000", "8000"} {
		want = append(want, `bench S4 backlog=`+n+`: peak_rss=`+num+` MB heap=`+num+` MB limit=256 MB broker=`+broker+` ratio=`+num)
	}
	for _, n := range []string{"1000", "2000"} {
		want = append(want, `bench S4 one-record backlog=`+n+`: peak_rss=`+num+` MB heap=`+num+` MB limit=256 MB broker=`+broker+` ratio=`+num)
	}
	want = append(want,
		`bench S4 amplification: held=`+num+` held_bytes=`+num+` MB heap=`+num+` MB constant=`+num+` MB amplification=`+num+` broker=`+broker+` ratio=`+num,
		`bench S5: revocation=`+num+` ms inflight_job=100 ms bound=200 ms broker=`+broker+` ratio=`+num,
		`bench S5 cooperative: pause_stayed=`+num+` ms eager=`+num+` ms job=100 ms bound=200 ms broker=`+broker+` ratio=`+num,
		`bench S6 keys=20000: rss_2k=`+num+` MB rss_20k=`+num+` MB broker=`+broker+` ratio=`+num,
		`bench S7 bad=10%: ordo=`+num+` jobs/s clean=`+num+` jobs/s broker=`+broker+` ratio=`+num,
		`bench S8 eager: revoked_others=`+num+` duplicates=`+num+` inflight=`+num+` untouched=`+num+` gap=`+num+` ms steady_gap=`+num+` ms broker=`+broker+` ratio=`+num,
		`bench S8 cooperative: revoked_others=`+num+` duplicates=`+num+` inflight=`+num+` untouched=`+num+` gap=`+num+` ms steady_gap=`+num+` ms broker=`+broker+` ratio=`+num,
		`bench S8 cooperative\+static: revoked_others=`+num+` duplicates=`+num+` inflight=`+num+` untouched=`+num+` gap=`+num+` ms steady_gap=`+num+` ms broker=`+broker+` ratio=`+num,
		`bench S9 jobs=1000 window=1s: lateness_p50=`+num+` ms lateness_p99=`+num+` ms lateness_max=`+num+` ms pending=5000 peak_rss=`+num+` MB limit=256 MB broker=`+broker+` ratio=`+num,
		`bench S10 sequential: ordo_p50=`+num+` ms ordo_p99=`+num+` ms writer_p50=`+num+` ms writer_p99=`+num+` ms broker=`+broker+` ratio=`+num,
		`bench S10 concurrent: ordo=`+num+` jobs/s writer=`+num+` jobs/s broker=`+broker+` ratio=`+num,
	)
	want = append(want, `bench S15: rate=`+num+` jobs/s ordo_sent=`+num+` jobs/s reader_pool_sent=`+num+` jobs/s ordo_p50=`+num+` ms ordo_p99=`+num+` ms ordo_max=`+num+
		` ms reader_pool_p50=`+num+` ms reader_pool_p99=`+num+` ms reader_pool_max=`+num+` ms broker=`+broker+` ratio=`+num)
	for _, c := range []string{"10", "100"} {
		want = append(want, `bench S11 c=`+c+`: batch=`+num+` jobs/s per_job=`+num+` jobs/s jobs_per_call=`+num+` order_violations=0 broker=`+broker+` ratio=`+num)
	}
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + w + `$`).MatchString(summary.String()) {
			t.Errorf("no summary line matching\n\t%s\nin\n%s", w, summary.String())
		}
	}
	for _, f := range []string{env.Name + ".md", env.Name + "-s2.png", env.Name + "-s3.png", env.Name + "-s3-blocking.png"} {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, env.Name+".md"))
	for _, row := range []string{"| S1 |", "| S5 |", "| S6 |", "| S7 |", "| S8 |", "| S10 |", "| S11 |", "| S15 |"} {
		if !bytes.Contains(md, []byte(row)) {
			t.Errorf("%s.md has no %s row:\n%s", env.Name, row, md)
		}
	}
}
