package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestQuickstartRunsEveryJob(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 3); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"user0@example.com", "user1@example.com", "user2@example.com"} {
		if !strings.Contains(out.String(), "sent welcome email to "+want) {
			t.Errorf("no email to %s in:\n%s", want, out.String())
		}
	}
}
