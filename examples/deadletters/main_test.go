package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDeclinedCardIsDeadLetteredWithItsHeaders(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	headers := map[string]string{}
	for _, line := range strings.Split(got, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			headers[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for name, want := range map[string]string{
		"source_attempts": "3", "source_kind": "charge_card",
		"error": "attempts exhausted (3 of 3): card declined",
	} {
		if headers[name] != want {
			t.Errorf("header %s = %q, want %q; output:\n%s", name, headers[name], want, got)
		}
	}
	if !strings.HasPrefix(got, "charged 2 of 3 cards") {
		t.Errorf("the other cards were not charged:\n%s", got)
	}
}
