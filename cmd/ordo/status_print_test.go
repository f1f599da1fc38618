package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/ops"
	"github.com/ordo-go/ordo/internal/status"
)

// ordo status shows, per partition, the records fetched and not yet handed
// to their keys beside the buffered ones: what a partition's memory follows.
func TestStatusShowsPrefetchedRecords(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	report := &status.Report{Version: status.Version, Group: "g", Member: "m", Started: now.Add(-time.Minute), At: now, IntervalMS: 60_000,
		Partitions: []status.Partition{{Topic: "jobs", Partition: 3, Committed: 10, HighWatermark: 5010, Lag: 5000, Buffered: 1000, Prefetched: 2345}}}
	var out bytes.Buffer
	printStatus(&out, []ops.Member{{Report: report}}, now, 0)
	var header, row []string
	for _, line := range strings.Split(out.String(), "\n") {
		switch f := strings.Fields(line); {
		case strings.HasPrefix(line, "GROUP") && strings.Contains(line, "BUFFERED"):
			header = f
		case len(f) > 2 && f[0] == "g" && f[1] == "jobs":
			row = f
		}
	}
	col := -1
	for i, h := range header {
		if h == "PREFETCHED" {
			col = i
		}
	}
	// "HIGH WATERMARK", "IN FLIGHT" and "KEY ACTORS" are two words each in
	// the header; PREFETCHED comes after HIGH WATERMARK only.
	if col < 0 || len(row) <= col-1 || row[col-1] != "2345" {
		t.Fatalf("no PREFETCHED column showing 2345 in:\n%s", out.String())
	}
}
