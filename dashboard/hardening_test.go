package dashboard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ordo-go/ordo/dashboard"
	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// site is a dashboard on an HTTP server, over a topic of jobs and a
// dead-letter topic holding one dead letter of it.
type site struct {
	env          *kafkatest.Env
	jobs, dlq    string
	audit        *kafkatest.Log
	url          string
	client       *http.Client
	secretInArgs string
	// sessions are the session cookies by Host, as a browser keeps them
	// by the name it reached.
	sessions map[string]*http.Cookie
}

func newSite(t *testing.T, cfg dashboard.Config) *site {
	t.Helper()
	env := kafkatest.New(t)
	s := &site{env: env, jobs: env.Topic(t, 1), dlq: env.Topic(t, 1), audit: &kafkatest.Log{}, secretInArgs: "4111-1111-1111-1111"}
	ctx := context.Background()
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: env.Brokers, Topic: s.jobs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(ctx, chargeArgs{Account: "acct-1", Card: s.secretInArgs}); err != nil {
		t.Fatal(err)
	}
	_ = client.Close()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: env.Brokers, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.ProduceSync(ctx, kafka.Message{Topic: s.dlq, Key: []byte("acct-1"), Value: []byte("a job"), Headers: []kafka.Header{
		{Key: jobs.HeaderKind, Value: []byte("charge")}, {Key: jobs.HeaderSourceTopic, Value: []byte(s.jobs)},
		{Key: jobs.HeaderSourcePartition, Value: []byte("0")}, {Key: jobs.HeaderSourceOffset, Value: []byte("0")},
		{Key: jobs.HeaderError, Value: []byte("card declined")}}}); err != nil {
		t.Fatal(err)
	}
	cfg.Brokers = env.Brokers
	cfg.DeadLetterTopics = append(cfg.DeadLetterTopics, s.dlq)
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(s.audit, testWriter{t}), nil))
	d, err := dashboard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	web := httptest.NewServer(d)
	t.Cleanup(web.Close)
	s.url, s.sessions = web.URL, map[string]*http.Cookie{}
	s.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return s
}

// do sends a request with the Host header host ("" keeps the server's own
// address) and returns the status and the body.
func (s *site) do(t *testing.T, method, host, path string, form url.Values, header ...string) (int, string, http.Header) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if host != "" {
		req.Host = host
	}
	if c := s.sessions[host]; c != nil {
		req.AddCookie(c)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "ordo_session" {
			s.sessions[host] = c
		}
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf loads the dead letters page with the Host header host and returns
// its CSRF token.
func (s *site) csrf(t *testing.T, host string) string {
	t.Helper()
	code, body, _ := s.do(t, http.MethodGet, host, "/deadletters?topic="+url.QueryEscape(s.dlq), nil)
	m := csrfField.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("the dead letters page: %d, no CSRF token:\n%s", code, body)
	}
	return m[1]
}

// A page served to a name the dashboard does not answer to is a DNS
// rebinding: an attacker's page whose name now resolves to the dashboard.
func TestDashboardRefusesAForeignHost(t *testing.T) {
	s := newSite(t, dashboard.Config{AllowedHosts: []string{"ops.example.com"}})
	const rebind = "rebind.example:8080"
	// The attacker's page loads the dashboard under its own name and
	// gets a session and a CSRF token; with the token of the dashboard's
	// own address when it gets none.
	code, body, _ := s.do(t, http.MethodGet, rebind, "/deadletters?topic="+url.QueryEscape(s.dlq), nil)
	if code != http.StatusMisdirectedRequest || csrfField.MatchString(body) {
		t.Errorf("GET with Host %s: %d, CSRF token given: %t; want 421 and none", rebind, code, csrfField.MatchString(body))
	}
	token := s.csrf(t, "")
	if m := csrfField.FindStringSubmatch(body); m != nil {
		token = m[1]
	} else {
		s.sessions[rebind] = s.sessions[""]
	}
	replay := url.Values{"csrf": {token}, "topic": {s.dlq}, "id": {"0/0"}}
	code, _, _ = s.do(t, http.MethodPost, rebind, "/replay", replay)
	if code != http.StatusMisdirectedRequest {
		t.Errorf("a replay POST with Host %s: %d; want 421", rebind, code)
	}
	if n := s.env.Records(t, s.jobs); n != 1 {
		t.Errorf("the replay from Host %s went through: the jobs topic holds %d records; want 1", rebind, n)
	}
	if log := s.audit.String(); !strings.Contains(log, "host not allowed") || !strings.Contains(log, `host=`+rebind) {
		t.Errorf("the audit log does not record the refusal:\n%s", log)
	}

	// The names the dashboard answers to: its address, and those allowed.
	if code, _, _ := s.do(t, http.MethodGet, "ops.example.com:8080", "/deadletters", nil); code != http.StatusOK {
		t.Errorf("GET with an allowed Host: %d; want 200", code)
	}
	if code, _, _ := s.do(t, http.MethodGet, "localhost", "/deadletters", nil); code != http.StatusOK {
		t.Errorf("GET with Host localhost: %d; want 200", code)
	}
	replay.Set("csrf", s.csrf(t, ""))
	code, _, h := s.do(t, http.MethodPost, "", "/replay", replay)
	if code != http.StatusSeeOther {
		t.Fatalf("a replay POST from the dashboard's own address: %d; want 303", code)
	}
	if n := s.env.Records(t, s.jobs); n != 2 {
		t.Errorf("after the replay from the dashboard's own address the jobs topic holds %d records; want 2", n)
	}
	if loc := h.Get("Location"); strings.Contains(loc, "dead+letters") || strings.Contains(loc, "dead%20letters") {
		t.Errorf("the replay's redirect carries the notice's text: %s", loc)
	}
}

// ?topic= reads only dead-letter topics: a topic of jobs would show live
// jobs and, with ShowPayloads, their args.
func TestDashboardShowsOnlyDeadLetterTopics(t *testing.T) {
	s := newSite(t, dashboard.Config{ShowPayloads: true})
	for _, path := range []string{
		"/deadletters?all=1&topic=" + url.QueryEscape(s.jobs),
		"/deadletter?id=0/0&topic=" + url.QueryEscape(s.jobs),
	} {
		code, body, _ := s.do(t, http.MethodGet, "", path, nil)
		if code != http.StatusForbidden || strings.Contains(body, s.secretInArgs) || strings.Contains(body, "acct-1") {
			t.Errorf("GET %s: %d, shows the job: %t; want 403 and no job", path, code,
				strings.Contains(body, s.secretInArgs) || strings.Contains(body, "acct-1"))
		}
	}
	code, _, _ := s.do(t, http.MethodPost, "", "/replay", url.Values{"csrf": {s.csrf(t, "")}, "topic": {s.jobs}, "id": {"0/0"}})
	if code != http.StatusForbidden {
		t.Errorf("a replay POST of the jobs topic: %d; want 403", code)
	}
	if n := s.env.Records(t, s.jobs); n != 1 {
		t.Errorf("the jobs topic holds %d records; want 1", n)
	}
	// The dead-letter topic itself shows its dead letter and its payload.
	code, body, _ := s.do(t, http.MethodGet, "", "/deadletter?id=0/0&topic="+url.QueryEscape(s.dlq), nil)
	if code != http.StatusOK || !strings.Contains(body, "card declined") {
		t.Errorf("GET the dead letter: %d\n%s", code, body)
	}
}

var noticeP = regexp.MustCompile(`<p class="notice" id="notice">([^<]*)</p>`)

func TestDashboardNoticesAreFixedMessages(t *testing.T) {
	s := newSite(t, dashboard.Config{})
	const phish = "Your session expired: call 1-555-0100 and read out your token"
	for _, path := range []string{"/?notice=" + url.QueryEscape(phish), "/deadletters?notice=" + url.QueryEscape(phish)} {
		code, body, _ := s.do(t, http.MethodGet, "", path, nil)
		if code != http.StatusOK || strings.Contains(body, "session expired") {
			t.Errorf("GET %s: %d, notice shown: %q", path, code, noticeP.FindString(body))
		}
	}
	code, body, _ := s.do(t, http.MethodGet, "", "/deadletters?notice=replayed&n=2&of=3", nil)
	if m := noticeP.FindStringSubmatch(body); code != http.StatusOK || m == nil || m[1] != "replayed 2 of 3 dead letters" {
		t.Errorf("GET with the notice code replayed: %d, notice %q; want \"replayed 2 of 3 dead letters\"", code, noticeP.FindString(body))
	}
}

func TestDashboardAuditsCrossOriginRefusals(t *testing.T) {
	s := newSite(t, dashboard.Config{})
	form := url.Values{"csrf": {s.csrf(t, "")}, "topic": {s.dlq}, "id": {"0/0"}}
	code, _, _ := s.do(t, http.MethodPost, "", "/replay", form, "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")
	if code != http.StatusForbidden {
		t.Errorf("a cross-origin replay POST: %d; want 403", code)
	}
	if n := s.env.Records(t, s.jobs); n != 1 {
		t.Errorf("the cross-origin replay went through: the jobs topic holds %d records", n)
	}
	if log := s.audit.String(); !strings.Contains(log, "replay refused: cross-origin request") || !strings.Contains(log, "evil.example") {
		t.Errorf("the audit log does not record the cross-origin refusal:\n%s", log)
	}
}
