package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestBalanceSurvivesPassivation(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 3, 8); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var loads int
	i := strings.Index(out.String(), "balances_correct=3 loads=")
	if i < 0 {
		t.Fatalf("balances wrong:\n%s", out.String())
	}
	if _, err := fmt.Sscanf(out.String()[i+len("balances_correct=3 loads="):], "%d", &loads); err != nil {
		t.Fatalf("no load count: %v\n%s", err, out.String())
	}
	// Each account's actor lived at least twice (it was passivated
	// between the rounds) and loaded the balance once per life.
	if loads < 6 {
		t.Errorf("%d loads, want at least 6 (state reloaded after passivation):\n%s", loads, out.String())
	}
}
