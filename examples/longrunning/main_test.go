package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer that the workers may write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLongJobStopsAtRevocationAndResumesOnTheNextOwner(t *testing.T) {
	var out syncBuffer
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
