package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDemoLosesAndReordersNothing(t *testing.T) {
	for _, maxVP := range []int{0, 4} {
		var out bytes.Buffer
		err := run(&out, options{jobs: 2000, users: 50, partitions: 4, concurrency: 20, maxVirtualPartitions: maxVP,
			work: 100 * time.Microsecond, progressEvery: 50 * time.Millisecond})
		if err != nil {
			t.Fatalf("max virtual partitions %d: %v\n%s", maxVP, err, out.String())
		}
		got := out.String()
		for _, want := range []string{"demo: jobs=2000 users=50 lost=0 order_violations=0 duplicates=0 jobs/s=", "jobs/s  in flight", "lag"} {
			if !strings.Contains(got, want) {
				t.Errorf("max virtual partitions %d: output lacks %q:\n%s", maxVP, want, got)
			}
		}
	}
}
