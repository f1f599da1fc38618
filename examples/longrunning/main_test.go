package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/examples/internal/exampleenv"
)

func TestLongJobStopsAtRevocationAndResumesOnTheNextOwner(t *testing.T) {
	var out exampleenv.SyncBuffer
	if err := run(&out, 12, 20*time.Millisecond); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"server A: export \"yearly\" starts at step 0/12",
		"server A: partition revoked at step",
		"server B: export \"yearly\" done",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "server B: export \"yearly\" starts at step 0/") {
		t.Errorf("server B started over instead of resuming at the checkpoint:\n%s", got)
	}
}
