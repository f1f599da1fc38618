package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
)

// syncBuffer is an io.Writer that run may write while the test reads.
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

func get(t *testing.T, method, url string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, body)
	}
	return string(body)
}

// committed returns the partitions /stats lists and the jobs committed on
// them (a committed offset is the next one to run, so with one topic they
// sum to the jobs done).
func committed(t *testing.T, base string) (partitions int, jobs int64) {
	t.Helper()
	body := get(t, http.MethodGet, base+"/stats")
	var stats []struct {
		Topic     string
		Partition int
		Committed int64
	}
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatalf("/stats: %v\n%s", err, body)
	}
	for _, s := range stats {
		if strings.HasPrefix(s.Topic, "signups-") {
			partitions++
			jobs += max(0, s.Committed)
		}
	}
	return partitions, jobs
}

func TestServiceEnqueuesRunsServesStatsAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, &out, "127.0.0.1:0", func(u string) { urls <- u }) }()
	var base string
	select {
	case base = <-urls:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("service did not start")
	}
	for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		get(t, http.MethodPost, base+"/signup?email="+email)
	}
	var health string
	var partitions int
	var jobs int64
	defer func() {
		if t.Failed() {
			t.Logf("last seen: /healthz %q; /stats %d partitions with %d jobs committed", health, partitions, jobs)
		}
	}()
	kafkatest.WaitFor(t, 30*time.Second, "/healthz to say 3 users welcomed", func() bool {
		health = get(t, http.MethodGet, base+"/healthz")
		return strings.Contains(health, "3 users welcomed")
	})
	kafkatest.WaitFor(t, 30*time.Second, "/stats to show 4 partitions with 3 jobs committed", func() bool {
		partitions, jobs = committed(t, base)
		return partitions == 4 && jobs == 3
	})
	cancel() // as SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("shutdown did not finish")
	}
	if !strings.Contains(out.String(), "stopped after welcoming 3 users") {
		t.Errorf("output:\n%s", out.String())
	}
}
