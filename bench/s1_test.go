package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
)

// TestS1ReportsTheMedianTrial: S1's headline ratio is the median of its
// trials' ordo/decode ratios, each trial running the two back to back, and
// its row lists every trial's ratio, so that a reader sees the spread.
func TestS1ReportsTheMedianTrial(t *testing.T) {
	// Its figures are not asserted, only which trial the headline takes:
	// it may share the machine with TestQuickRun.
	t.Parallel()
	env := kafkatest.New(t)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var summary, progress bytes.Buffer
	const trials = 3
	tune := func(s *sizes) { s.s1Jobs, s.s1Trials = 2_000, trials }
	err := run(ctx, options{quick: true, only: []string{"S1"}, out: out, tune: tune}, target{Name: env.Name, Brokers: env.Brokers}, &summary, &progress)
	if err != nil {
		t.Fatalf("bench -quick -only S1: %v\nprogress:\n%s", err, progress.String())
	}
	line := regexp.MustCompile(`(?m)^bench S1 .* decode=([0-9]+) jobs/s .* ordo=([0-9]+) jobs/s .* ratio=([0-9.]+)$`).
		FindStringSubmatch(summary.String())
	if line == nil {
		t.Fatalf("no bench S1 line in\n%s", summary.String())
	}
	md, err := os.ReadFile(filepath.Join(out, env.Name+".md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| S1 \| [^|]*median of ` + strconv.Itoa(trials) + ` trials \(ordo/decode ([0-9., ]+)\): ordo against fetch\+decode \|.*$`).
		FindStringSubmatch(string(md))
	if row == nil {
		t.Fatalf("no S1 row naming the median of %d trials and their ratios in\n%s", trials, md)
	}
	var ratios []string
	for r := range strings.SplitSeq(row[1], ", ") {
		ratios = append(ratios, r)
	}
	if len(ratios) != trials {
		t.Fatalf("S1 row lists %d trial ratios %q, want %d", len(ratios), ratios, trials)
	}
	sorted := slices.Clone(ratios)
	slices.SortFunc(sorted, func(a, b string) int {
		x, _ := strconv.ParseFloat(a, 64)
		y, _ := strconv.ParseFloat(b, 64)
		return int((x - y) * 1000)
	})
	if median := sorted[trials/2]; line[3] != median {
		t.Errorf("headline ratio=%s, the median of the trials %v is %s", line[3], ratios, median)
	}
	// The headline's rates are the median trial's own: they give its ratio.
	decode, _ := strconv.ParseFloat(line[1], 64)
	ordo, _ := strconv.ParseFloat(line[2], 64)
	if r := strconv.FormatFloat(ordo/decode, 'f', 2, 64); r != line[3] {
		t.Errorf("headline ordo=%s / decode=%s = %s, not its ratio=%s", line[2], line[1], r, line[3])
	}
}
