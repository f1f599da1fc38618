package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestScheduledRunsLaterAndCancelSaysWhatHappened(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"cancel before due: cancelled",
		"reminded: welcome",
		"reminded: renew your plan (2.",
		"cancel after dispatch: too late",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}
