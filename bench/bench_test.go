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

// TestMain lets S4 re-run this test binary as its measured child process.
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
	env := kafkatest.New(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var summary, progress bytes.Buffer
	err := run(ctx, options{quick: true, out: out}, target{Name: env.Name, Brokers: env.Brokers}, &summary, &progress)
	if err != nil {
		t.Fatalf("bench -quick: %v\nprogress:\n%s", err, progress.String())
	}
	num := `[0-9]+(\.[0-9]+)?`
	broker := regexp.QuoteMeta(env.Name)
	want := []string{
		`bench S1 raw=` + num + ` jobs/s naive=` + num + ` jobs/s ordo=` + num + ` jobs/s broker=` + broker + ` ratio=` + num,
	}
	for _, c := range []string{"1", "5", "10", "14", "100"} {
		want = append(want, `bench S2 c=`+c+`: ordo=`+num+` jobs/s bound=`+num+` broker=`+broker+` ratio=`+num)
	}
	for _, k := range []string{"1", "2", "5", "10", "20", "1000", "10000"} {
		want = append(want, `bench S3 keys=`+k+`: ordo=`+num+` s bound=`+num+` s broker=`+broker+` ratio=`+num)
	}
	for _, n := range []string{"20000", "80000"} {
		want = append(want, `bench S4 backlog=`+n+`: peak_rss=`+num+` MB heap=`+num+` MB limit=256 MB broker=`+broker+` ratio=`+num)
	}
	want = append(want, `bench S5: revocation=`+num+` ms inflight_job=100 ms bound=200 ms broker=`+broker+` ratio=`+num)
	for _, w := range want {
		if !regexp.MustCompile(`(?m)^` + w + `$`).MatchString(summary.String()) {
			t.Errorf("no summary line matching\n\t%s\nin\n%s", w, summary.String())
		}
	}
	for _, f := range []string{env.Name + ".md", env.Name + "-s2.png", env.Name + "-s3.png"} {
		st, err := os.Stat(filepath.Join(out, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, env.Name+".md"))
	if !bytes.Contains(md, []byte("| S5 |")) {
		t.Errorf("%s.md has no S5 row:\n%s", env.Name, md)
	}
}
