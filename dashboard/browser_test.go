package dashboard_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ordo-go/ordo/dashboard"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

type chargeArgs struct {
	Account string `msgpack:"account"`
	Card    string `msgpack:"card"`
	Decline bool   `msgpack:"decline"`
}

func (chargeArgs) Kind() string { return "charge" }

// ledger is the worker's record of the jobs that succeeded, by id.
type ledger struct {
	mu sync.Mutex
	ok map[string]int
}

func (l *ledger) succeeded(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok[id]
}

// chromium finds the browser, or skips the test when there is none outside
// CI; CI installs it (scripts/install-chromium.sh), so there it must be.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH in CI: .ci/run installs it with scripts/install-chromium.sh")
	}
	t.Skip("browser test skipped: no chromium on PATH (install it with: bash scripts/install-chromium.sh)")
	return ""
}

// screenshots is where the browser tests leave their screenshots: a
// directory under the system's temp dir, kept after the test; with
// ORDO_DOCS_SCREENSHOTS=1 they are also copied to docs/ for the README.
func screenshots(t *testing.T) func(name string, png []byte) {
	dir := filepath.Join(os.TempDir(), "ordo-dashboard-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return func(name string, png []byte) {
		path := filepath.Join(dir, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
		if os.Getenv("ORDO_DOCS_SCREENSHOTS") == "1" {
			docs := filepath.Join("..", "docs", "dashboard-"+name+".png")
			if err := os.WriteFile(docs, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", docs)
		}
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestDashboardInABrowser(t *testing.T) {
	exe := chromium(t)
	const token = "s3cret-token"
	env := kafkatest.New(t)
	topic, dlq, statusTopic := env.Topic(t, 3), env.Topic(t, 1), env.Topic(t, 1)
	quiet := slog.New(slog.DiscardHandler)

	l := &ledger{ok: map[string]int{}}
	ws := jobs.NewWorkers()
	if err := jobs.AddWorker(ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[chargeArgs]) error {
		replayed := false
		for _, h := range j.Headers {
			replayed = replayed || h.Key == jobs.HeaderReplays
		}
		if j.Args.Decline && !replayed {
			return jobs.Permanent(fmt.Errorf("card declined for account %s", j.Args.Account))
		}
		l.mu.Lock()
		l.ok[j.ID]++
		l.mu.Unlock()
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	server, err := jobs.NewServer(jobs.Config{Brokers: env.Brokers, Group: env.Group(t), Topics: []string{topic}, Workers: ws,
		DeadLetterTopic: dlq, StatusTopic: statusTopic, StatusInterval: 300 * time.Millisecond,
		CreateTopics:      &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Stop(context.Background()) })

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: topic, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	// Bad input: three charges that are declined, and a record that is no
	// job at all.
	var declined []string
	for i := range 3 {
		info, err := client.Enqueue(ctx, chargeArgs{Account: "acct-" + strconv.Itoa(i), Card: "4111-1111-1111-1111", Decline: true},
			jobs.WithKey("acct-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		declined = append(declined, info.ID)
	}
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ProduceSync(ctx, kafka.Message{Topic: topic, Key: []byte("garbage"), Value: []byte("not a job")}); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	// A steady trickle of good jobs, so the dashboard has throughput to
	// show.
	trickle, stopTrickle := context.WithCancel(ctx)
	var trickled sync.WaitGroup
	trickled.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-trickle.Done():
				return
			case <-tick.C:
			}
			_, _ = client.Enqueue(trickle, chargeArgs{Account: "acct-" + strconv.Itoa(i%20)}, jobs.WithKey("acct-"+strconv.Itoa(i%20)))
		}
	})
	t.Cleanup(func() { stopTrickle(); trickled.Wait() })

	d, err := dashboard.New(dashboard.Config{Brokers: env.Brokers, StatusTopic: statusTopic, BearerToken: token,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	web := httptest.NewServer(d)
	t.Cleanup(web.Close)

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	browser, cancelTimeout := context.WithTimeout(browser, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	save := screenshots(t)
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		save(name, png)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	// until reloads url until cond holds of the page.
	until := func(what, url string, cond func() bool) {
		t.Helper()
		defer func() {
			if t.Failed() {
				body, _ := chromedp.Run(browser, chromedp.Text(chromedp.CSS("main")))
				t.Logf("the page shows:\n%s", body)
			}
		}()
		kafkatest.WaitFor(t, 60*time.Second, what, func() bool {
			if err := chromedp.Do(browser, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("footer"))); err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			return cond()
		})
	}

	// Without the token: 401.
	if err := chromedp.Do(browser, chromedp.Navigate(web.URL+"/")); err != nil {
		t.Fatal(err)
	}
	body, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "401 unauthorized") {
		t.Fatalf("without the token the dashboard answered: %q", body)
	}

	// With it (once in the address; then a cookie): the member, its
	// partitions, non-zero throughput.
	if err := chromedp.Do(browser, chromedp.Navigate(web.URL+"/?token="+token), chromedp.WaitReady(chromedp.CSS("footer"))); err != nil {
		t.Fatal(err)
	}
	location, err := chromedp.Run(browser, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(location, token) {
		t.Errorf("the token stayed in the address bar: %s", location)
	}
	until("the overview to show one member, 3 partitions and throughput", web.URL+"/", func() bool {
		tp, _ := strconv.ParseFloat(text("#throughput"), 64)
		// A few points make a line of the throughput chart.
		points, _ := chromedp.Run(browser, chromedp.Evaluate[int](
			`document.querySelector("svg.chart polyline").getAttribute("points").trim().split(" ").length`))
		return text("#members-live") == "1" && text("#partitions") == "3" && tp > 0 && text("#pending") == "4" && points >= 6
	})
	shoot("overview")

	until("the partition table to show 3 partitions of one member", web.URL+"/members", func() bool {
		rows, _ := chromedp.Run(browser, chromedp.Evaluate[int](`document.querySelectorAll("#partitions tbody tr td.member").length`))
		return rows == 3 && strings.Contains(text("#members"), "live")
	})
	shoot("members")

	until("the errors page to show the declined charges", web.URL+"/errors", func() bool {
		return strings.Count(text("#errors"), "card declined") == 3 && strings.Contains(text("#errors"), "undecodable")
	})
	shoot("errors")

	until("the dead letters page to show 4 pending", web.URL+"/deadletters", func() bool { return text("#dl-pending") == "4" })
	shoot("deadletters")

	// A replay POST without the CSRF token is refused, from the page itself.
	refused, err := chromedp.Run(browser, chromedp.Evaluate[int](fmt.Sprintf(
		`fetch("replay", {method: "POST", body: new URLSearchParams({topic: %q, id: "0/0"})}).then(r => r.status)`, dlq),
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if refused != 403 {
		t.Errorf("a replay POST without the CSRF token got %d; want 403", refused)
	}
	if got := text("#dl-pending"); got != "4" {
		t.Errorf("after the refused POST, %s pending", got)
	}

	// Open a declined charge, replay it, and see it run and leave the
	// count.
	href, err := chromedp.Run(browser, chromedp.Evaluate[string](`[...document.querySelectorAll("#deadletters tbody tr")]
		.find(r => r.children[3].textContent === "charge").querySelector("a").getAttribute("href")`))
	if err != nil {
		t.Fatalf("no dead letter of kind charge to open: %v", err)
	}
	if err := chromedp.Do(browser, chromedp.Navigate(web.URL+"/"+href), chromedp.WaitReady(chromedp.CSS("#deadletter"))); err != nil {
		t.Fatal(err)
	}
	if r := text("#reason"); !strings.Contains(r, "card declined") {
		t.Fatalf("the dead letter opened is not a declined charge: %q", r)
	}
	if p := text("#payload"); !strings.Contains(p, "bytes, kind charge") || strings.Contains(p, "4111") {
		t.Errorf("the payload without --show-payloads shows %q", p)
	}
	jobID := text(`#deadletter tr:nth-child(5) td`)
	shoot("deadletter")
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS("#replay-one")), chromedp.WaitVisible(chromedp.CSS("#notice"))); err != nil {
		t.Fatal(err)
	}
	if n := text("#notice"); !strings.HasPrefix(n, "replayed 1 of 1 dead letters") {
		t.Errorf("after the replay the page says %q", n)
	}
	if got := text("#dl-pending"); got != "3" {
		t.Errorf("after the replay %s pending; want 3", got)
	}
	shoot("deadletters-after-replay")
	kafkatest.WaitFor(t, 30*time.Second, fmt.Sprintf("the replayed job %s to run (declined: %v)", jobID, declined),
		func() bool { return l.succeeded(jobID) == 1 })
	if !slices.Contains(declined, jobID) {
		t.Errorf("the replayed job %s is not one of the declined %v", jobID, declined)
	}
}
