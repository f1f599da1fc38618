package dashboard_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ordo-go/ordo/dashboard"
)

func TestNewNamesTheBadSetting(t *testing.T) {
	cases := []struct {
		name    string
		cfg     dashboard.Config
		mention string
	}{
		{"no brokers", dashboard.Config{}, "dashboard.Config.Brokers"},
		{"a broker without a port", dashboard.Config{Brokers: []string{"b:9092", "localhost"}}, "dashboard.Config.Brokers[1]"},
		{"a bad status topic", dashboard.Config{Brokers: []string{"b:9092"}, StatusTopic: "a b"}, "dashboard.Config.StatusTopic"},
		{"a bad dead-letter topic", dashboard.Config{Brokers: []string{"b:9092"}, DeadLetterTopics: []string{"ok", "x/y"}}, "dashboard.Config.DeadLetterTopics[1]"},
		{"bearer and basic", dashboard.Config{Brokers: []string{"b:9092"}, BearerToken: "t", BasicUser: "u", BasicPassword: "p"}, "dashboard.Config.BearerToken"},
		{"a user without a password", dashboard.Config{Brokers: []string{"b:9092"}, BasicUser: "u"}, "dashboard.Config.BasicUser"},
		{"a URL for a host", dashboard.Config{Brokers: []string{"b:9092"}, AllowedHosts: []string{"ops", "https://ops/"}}, "dashboard.Config.AllowedHosts[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dashboard.New(tc.cfg)
			if !errors.Is(err, dashboard.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("New: %v; want ErrInvalidConfig naming %s", err, tc.mention)
			}
		})
	}
}

// Refusals need no broker: they come before the dashboard reads anything.
// The requests are to example.com, as httptest makes them.
func TestRefusals(t *testing.T) {
	hosts := []string{"example.com"}
	basic, err := dashboard.New(dashboard.Config{Brokers: []string{"127.0.0.1:1"}, AllowedHosts: hosts, BasicUser: "ops", BasicPassword: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	readOnly, err := dashboard.New(dashboard.Config{Brokers: []string{"127.0.0.1:1"}, AllowedHosts: hosts, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	open, err := dashboard.New(dashboard.Config{Brokers: []string{"127.0.0.1:1"}, AllowedHosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"topic": {"jobs.dlq"}, "id": {"0/0"}}.Encode()
	post := func(target string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	withBasic := func(r *http.Request, u, p string) *http.Request { r.SetBasicAuth(u, p); return r }
	cases := []struct {
		name string
		h    http.Handler
		req  *http.Request
		code int
	}{
		{"no credentials", basic, httptest.NewRequest(http.MethodGet, "/", nil), http.StatusUnauthorized},
		{"a wrong password", basic, withBasic(httptest.NewRequest(http.MethodGet, "/", nil), "ops", "nope"), http.StatusUnauthorized},
		{"a replay in read-only mode", readOnly, post("/replay"), http.StatusForbidden},
		{"a replay without a CSRF token", open, post("/replay"), http.StatusForbidden},
		{"a replay by GET", open, httptest.NewRequest(http.MethodGet, "/replay?"+form, nil), http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, tc.req)
			if w.Code != tc.code {
				t.Errorf("got %d %q; want %d", w.Code, w.Body.String(), tc.code)
			}
		})
	}
}
