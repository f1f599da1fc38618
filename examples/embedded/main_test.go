package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ordo-go/ordo/examples/internal/exampleenv"
)

func get(t *testing.T, method, url string) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, body)
	}
	return string(body)
}

func TestServiceEnqueuesRunsServesMetricsAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	urls := make(chan string, 1)
	var out exampleenv.SyncBuffer
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
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(get(t, http.MethodGet, base+"/healthz"), "3 users welcomed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs did not run: %s", get(t, http.MethodGet, base+"/healthz"))
		}
	}
	if m := get(t, http.MethodGet, base+"/metrics"); !strings.Contains(m, `ordo_jobs_processed_total{kind="signup"} 3`) {
		t.Errorf("/metrics lacks the processed jobs:\n%s", m)
	}
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
