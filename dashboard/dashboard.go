// Package dashboard is ordo's web dashboard as an http.Handler: the groups,
// members and partitions from the servers' status reports, throughput, error
// rate and lag over time, the recent errors, and the dead letters, which it
// can replay. It needs Kafka and nothing else; `ordo web` serves it, and a
// service can mount it:
//
//	d, err := dashboard.New(dashboard.Config{Brokers: brokers, BearerToken: token})
//	mux.Handle("/ordo/", http.StripPrefix("/ordo", d))
//
// Pages are rendered on the server with a little JavaScript. Replays are
// POST-only with a CSRF token, refused in ReadOnly mode, and logged with who
// asked and what. Job payloads are shown as their size and kind unless
// ShowPayloads is set.
package dashboard

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ordo-go/ordo/internal/ops"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// ErrInvalidConfig is wrapped by New's errors; the message names the
// setting, such as dashboard.Config.Brokers.
var ErrInvalidConfig = errors.New("invalid configuration")

// Config configures a Dashboard. Zero values take the defaults noted.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string
	// Security secures the connections to Kafka. Default nil: plaintext.
	Security *jobs.Security
	// StatusTopic is the servers' status topic (jobs.Config.StatusTopic).
	// Default jobs.DefaultStatusTopic.
	StatusTopic string
	// DeadLetterTopics are browsed besides those the servers' reports
	// name.
	DeadLetterTopics []string

	// BearerToken, when set, is required of every request: as an
	// "Authorization: Bearer" header, or once as ?token= in a browser,
	// which then keeps it in a cookie.
	BearerToken string
	// BasicUser and BasicPassword, when set, require HTTP basic auth.
	// Use one of BearerToken and basic auth.
	BasicUser, BasicPassword string
	// AllowedHosts are the host names the dashboard answers to, besides IP
	// addresses and "localhost", which it always answers to: "ops.example.com"
	// (any port) or "ops.example.com:8080". A request whose Host header
	// names another host is refused with 421 and logged: it is how a DNS
	// rebinding attack, a page whose name comes to resolve to the
	// dashboard's address, would reach it. Mounted in a service reached by
	// name, list the names here.
	AllowedHosts []string
	// ReadOnly hides and refuses replays.
	ReadOnly bool
	// ShowPayloads shows dead letters' args; by default only their size
	// and kind.
	ShowPayloads bool
	// Logger receives the audit log of replays and the errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// Dashboard serves the dashboard's pages. It is safe for concurrent use.
type Dashboard struct {
	cfg      Config
	admin    *kafka.Admin
	status   *ops.StatusReader
	history  *history
	pages    *template.Template
	csrfKey  []byte
	protect  *http.CrossOriginProtection
	mux      *http.ServeMux
	producer func() (*kafka.Producer, error)

	refreshMu   sync.Mutex
	refreshedAt time.Time
	refreshErr  error
}

//go:embed templates/*.html static/*
var assets embed.FS

// New validates cfg; it does not contact Kafka.
func New(cfg Config) (*Dashboard, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.StatusTopic = cmp.Or(cfg.StatusTopic, jobs.DefaultStatusTopic)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: templates: %w", err)
	}
	admin := kafka.NewSecureAdmin(cfg.Brokers, cfg.Security)
	d := &Dashboard{
		cfg: cfg, admin: admin, status: ops.NewStatusReader(admin, cfg.StatusTopic),
		history: newHistory(360), pages: pages, csrfKey: make([]byte, 32), protect: http.NewCrossOriginProtection(),
	}
	_, _ = rand.Read(d.csrfKey)
	d.protect.SetDenyHandler(http.HandlerFunc(d.crossOrigin))
	var once sync.Once
	var producer *kafka.Producer
	var perr error
	d.producer = func() (*kafka.Producer, error) {
		once.Do(func() {
			producer, perr = kafka.NewProducer(kafka.ProducerConfig{Brokers: cfg.Brokers, Security: cfg.Security, Logger: cfg.Logger})
		})
		return producer, perr
	}
	d.routes()
	return d, nil
}

func (c Config) validate() error {
	fail := func(field string, err error) error {
		return fmt.Errorf("%w: dashboard.Config.%s: %w", ErrInvalidConfig, field, err)
	}
	if len(c.Brokers) == 0 {
		return fail("Brokers", errors.New("give at least one host:port"))
	}
	for i, b := range c.Brokers {
		if err := kafka.CheckBrokerAddress(b); err != nil {
			return fail(fmt.Sprintf("Brokers[%d]", i), err)
		}
	}
	if err := c.Security.Validate(); err != nil {
		return fail("Security", err)
	}
	if c.StatusTopic != "" {
		if err := kafka.CheckTopicName(c.StatusTopic); err != nil {
			return fail("StatusTopic", err)
		}
	}
	for i, t := range c.DeadLetterTopics {
		if err := kafka.CheckTopicName(t); err != nil {
			return fail(fmt.Sprintf("DeadLetterTopics[%d]", i), err)
		}
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/ \t@") {
			return fail(fmt.Sprintf("AllowedHosts[%d]", i), fmt.Errorf("%q is not a host or host:port", h))
		}
	}
	if c.BearerToken != "" && (c.BasicUser != "" || c.BasicPassword != "") {
		return fail("BearerToken", errors.New("is set together with basic auth; choose one"))
	}
	if (c.BasicUser == "") != (c.BasicPassword == "") {
		return fail("BasicUser", errors.New("and BasicPassword go together"))
	}
	return nil
}

// Close releases the dashboard's connections.
func (d *Dashboard) Close() error {
	p, err := d.producer()
	if err != nil || p == nil {
		return nil
	}
	return p.Close()
}

func (d *Dashboard) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.overviewPage)
	mux.HandleFunc("GET /members", d.membersPage)
	mux.HandleFunc("GET /errors", d.errorsPage)
	mux.HandleFunc("GET /deadletters", d.deadLettersPage)
	mux.HandleFunc("GET /deadletter", d.deadLetterPage)
	mux.Handle("POST /replay", d.protect.Handler(http.HandlerFunc(d.replay)))
	mux.Handle("GET /static/", http.FileServerFS(assets))
	d.mux = mux
}

// ServeHTTP authenticates the request and serves it.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	if !d.hostAllowed(r.Host) {
		d.cfg.Logger.Warn("ordo dashboard: request refused: host not allowed (a DNS rebinding?); allow it with AllowedHosts (--allowed-hosts)",
			"who", r.RemoteAddr, "host", r.Host, "method", r.Method, "path", r.URL.Path)
		http.Error(w, "421 misdirected request: this dashboard does not answer to that host name", http.StatusMisdirectedRequest)
		return
	}
	who, ok := d.authenticate(w, r)
	if !ok {
		return
	}
	r = r.WithContext(withWho(r.Context(), who))
	d.mux.ServeHTTP(w, r)
}

// hostAllowed tells whether the dashboard answers to the Host header host:
// an IP address (which DNS rebinding cannot produce: the attacker's page
// has a name), localhost, or one of Config.AllowedHosts.
func (d *Dashboard) hostAllowed(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.Trim(name, "[]"), ".")
	if net.ParseIP(name) != nil || name == "localhost" {
		return true
	}
	for _, a := range d.cfg.AllowedHosts {
		a = strings.ToLower(a)
		if a == host || a == name {
			return true
		}
	}
	return false
}

// crossOrigin answers a POST that http.CrossOriginProtection refused, and
// puts it in the audit log as the CSRF refusals are.
func (d *Dashboard) crossOrigin(w http.ResponseWriter, r *http.Request) {
	d.cfg.Logger.Warn("ordo dashboard: replay refused: cross-origin request", "who", whoOf(r.Context()),
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"), "host", r.Host)
	http.Error(w, "403 forbidden: cross-origin request", http.StatusForbidden)
}

const (
	tokenCookie   = "ordo_token"
	sessionCookie = "ordo_session"
)

// authenticate checks the credentials; it answers 401 itself. It returns
// who the caller is, for the audit log.
func (d *Dashboard) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	remote := r.RemoteAddr
	switch {
	case d.cfg.BearerToken != "":
		if q := r.URL.Query().Get("token"); q != "" && equal(q, d.cfg.BearerToken) {
			// A browser cannot send a bearer header: keep the token in a
			// cookie and drop it from the address bar.
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			u := *r.URL
			v := u.Query()
			v.Del("token")
			u.RawQuery = v.Encode()
			http.Redirect(w, r, relative(&u), http.StatusSeeOther)
			return "", false
		}
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(tok, d.cfg.BearerToken) {
			return "bearer@" + remote, true
		}
		if c, err := r.Cookie(tokenCookie); err == nil && equal(c.Value, d.cfg.BearerToken) {
			return "bearer@" + remote, true
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ordo"`)
		http.Error(w, "401 unauthorized: give the dashboard's bearer token", http.StatusUnauthorized)
		return "", false
	case d.cfg.BasicUser != "":
		u, p, ok := r.BasicAuth()
		if ok && equal(u, d.cfg.BasicUser) && equal(p, d.cfg.BasicPassword) {
			return u + "@" + remote, true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="ordo", charset="UTF-8"`)
		http.Error(w, "401 unauthorized", http.StatusUnauthorized)
		return "", false
	}
	return "anonymous@" + remote, true
}

// relative is u as a link relative to its own directory, so that the
// dashboard works mounted under any prefix.
func relative(u *url.URL) string {
	name := u.Path[strings.LastIndex(u.Path, "/")+1:]
	if name == "" {
		name = "./"
	}
	if u.RawQuery != "" {
		return name + "?" + u.RawQuery
	}
	return name
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// csrfToken returns the request's CSRF token, setting the session cookie it
// is derived from when the browser has none yet.
func (d *Dashboard) csrfToken(w http.ResponseWriter, r *http.Request) string {
	session := ""
	if c, err := r.Cookie(sessionCookie); err == nil && len(c.Value) == 32 {
		session = c.Value
	} else {
		var b [16]byte
		_, _ = rand.Read(b[:])
		session = hex.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return d.tokenFor(session)
}

func (d *Dashboard) tokenFor(session string) string {
	mac := hmac.New(sha256.New, d.csrfKey)
	mac.Write([]byte(session))
	return hex.EncodeToString(mac.Sum(nil))
}

// checkCSRF tells whether a POST carries the token of its session.
func (d *Dashboard) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(d.tokenFor(c.Value)))
}
