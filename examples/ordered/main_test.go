package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestOrderedKeepsEachAccountInOrder(t *testing.T) {
	for _, maxVP := range []int{0, 2} {
		var out bytes.Buffer
		if err := run(&out, 6, 10, maxVP); err != nil {
			t.Fatalf("max virtual partitions %d: %v\n%s", maxVP, err, out.String())
		}
		if !strings.Contains(out.String(), "in_order=6 overlapping_runs=0") {
			t.Errorf("max virtual partitions %d: %s", maxVP, out.String())
		}
	}
}
