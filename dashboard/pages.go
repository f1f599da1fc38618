package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ordo-go/ordo/internal/ops"
)

type whoKey struct{}

func withWho(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, whoKey{}, who)
}

func whoOf(ctx context.Context) string {
	s, _ := ctx.Value(whoKey{}).(string)
	return s
}

// refresh reads the status reports published since the last refresh (at
// most once a second) and records a point of the charts.
func (d *Dashboard) refresh(ctx context.Context) ([]ops.Member, error) {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	now := time.Now()
	if now.Sub(d.refreshedAt) < time.Second {
		return d.status.Members(now), d.refreshErr
	}
	d.refreshErr = d.status.Refresh(ctx)
	d.refreshedAt = now
	members := d.status.Members(now)
	if d.refreshErr == nil {
		o := ops.Summarize(members)
		d.history.add(sample{At: now, Processed: o.ProcessedRate, Failed: o.FailedRate, Lag: float64(o.Lag)})
	}
	return members, d.refreshErr
}

// page is what every template gets.
type page struct {
	Title, Nav   string
	ReadOnly     bool
	ShowPayloads bool
	Error        string
	Notice       string
	CSRF         string
	Now          time.Time
	Data         any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, name, title string, data any, err error) {
	p := page{Title: title, Nav: name, ReadOnly: d.cfg.ReadOnly, ShowPayloads: d.cfg.ShowPayloads,
		CSRF: d.csrfToken(w, r), Now: time.Now(), Data: data, Notice: notice(r.URL.Query())}
	if err != nil {
		p.Error = err.Error()
		d.cfg.Logger.Warn("ordo dashboard: "+name, "err", err)
	}
	var buf bytes.Buffer
	if err := d.pages.ExecuteTemplate(&buf, name+".html", p); err != nil {
		d.cfg.Logger.Error("ordo dashboard: rendering failed", "page", name, "err", err)
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// notices are the messages ?notice= may show, by code: a page shows only
// text of its own, never text from the address, which anyone can link to.
var notices = map[string]func(q url.Values) string{
	"replayed": func(q url.Values) string {
		n, _ := strconv.Atoi(q.Get("n"))
		of, _ := strconv.Atoi(q.Get("of"))
		return fmt.Sprintf("replayed %d of %d dead letters", n, of)
	},
}

func notice(q url.Values) string {
	if f := notices[q.Get("notice")]; f != nil {
		return f(q)
	}
	return ""
}

type overview struct {
	ops.Overview
	Pending                                int
	ThroughputChart, ErrorsChart, LagChart template.HTML
	ThroughputMax, ErrorsMax, LagMax       string
	MemberList                             []ops.Member
}

func (d *Dashboard) overviewPage(w http.ResponseWriter, r *http.Request) {
	members, err := d.refresh(r.Context())
	v := overview{Overview: ops.Summarize(members), MemberList: members}
	pts := d.history.points()
	v.ThroughputChart, v.ThroughputMax = chart(pts, func(s sample) float64 { return s.Processed }, "#2f6fdf")
	v.ErrorsChart, v.ErrorsMax = chart(pts, func(s sample) float64 { return s.Failed }, "#d33")
	v.LagChart, v.LagMax = chart(pts, func(s sample) float64 { return s.Lag }, "#8a5cd0")
	for _, t := range d.deadLetterTopics(members) {
		dls, derr := ops.ReadDeadLetters(r.Context(), d.admin, t)
		if derr != nil {
			err = cmpErr(err, derr)
			continue
		}
		for _, dl := range dls {
			if !dl.Replayed() {
				v.Pending++
			}
		}
	}
	d.render(w, r, "overview", "Overview", v, err)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

type membersView struct {
	Members    []ops.Member
	Partitions []ops.PartitionRow
}

func (d *Dashboard) membersPage(w http.ResponseWriter, r *http.Request) {
	members, err := d.refresh(r.Context())
	v := membersView{Members: members, Partitions: ops.PartitionRows(members)}
	d.render(w, r, "members", "Members and partitions", v, err)
}

func (d *Dashboard) errorsPage(w http.ResponseWriter, r *http.Request) {
	members, err := d.refresh(r.Context())
	d.render(w, r, "errors", "Errors", ops.RecentErrors(members, 200), err)
}

// deadLetterTopics are the configured ones and those the members report.
func (d *Dashboard) deadLetterTopics(members []ops.Member) []string {
	ts := slices.Clone(d.cfg.DeadLetterTopics)
	for _, m := range members {
		if m.DeadLetterTopic != "" && !slices.Contains(ts, m.DeadLetterTopic) {
			ts = append(ts, m.DeadLetterTopic)
		}
	}
	slices.Sort(ts)
	return ts
}

// topicAllowed tells whether ?topic= names a topic the dashboard reads: a
// dead-letter topic it was given or the servers report, or one whose name
// ends in ".dlq". Any other (a topic of jobs, with ShowPayloads their args)
// is refused with 403 and logged.
func (d *Dashboard) topicAllowed(w http.ResponseWriter, r *http.Request, topic string, members []ops.Member) bool {
	if strings.HasSuffix(topic, ".dlq") || slices.Contains(d.deadLetterTopics(members), topic) {
		return true
	}
	d.cfg.Logger.Warn("ordo dashboard: request refused: not a dead-letter topic", "who", whoOf(r.Context()),
		"topic", topic, "path", r.URL.Path)
	http.Error(w, "403 forbidden: the dashboard shows only dead-letter topics: those the servers report, those it was given "+
		"(--dlq-topic), and those whose name ends in \".dlq\"", http.StatusForbidden)
	return false
}

type deadLettersView struct {
	Topics          []string
	Topic           string
	All             bool
	Pending, Total  int
	DeadLetters     []ops.DeadLetter
	ReplayableCount int
}

func (d *Dashboard) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	members, _ := d.refresh(r.Context())
	v := deadLettersView{Topics: d.deadLetterTopics(members), Topic: r.URL.Query().Get("topic"), All: r.URL.Query().Get("all") == "1"}
	if v.Topic == "" && len(v.Topics) > 0 {
		v.Topic = v.Topics[0]
	}
	if v.Topic != "" && !d.topicAllowed(w, r, v.Topic, members) {
		return
	}
	var err error
	if v.Topic != "" {
		var dls []ops.DeadLetter
		dls, err = ops.ReadDeadLetters(r.Context(), d.admin, v.Topic)
		v.Total = len(dls)
		for _, dl := range dls {
			if !dl.Replayed() {
				v.Pending++
			}
			if v.All || !dl.Replayed() {
				v.DeadLetters = append(v.DeadLetters, dl)
			}
		}
		// Newest first: what just failed is what an operator looks for.
		slices.Reverse(v.DeadLetters)
	}
	d.render(w, r, "deadletters", "Dead letters", v, err)
}

type deadLetterView struct {
	Topic      string
	DeadLetter *ops.DeadLetter
	Payload    string
}

func (d *Dashboard) deadLetterPage(w http.ResponseWriter, r *http.Request) {
	topic, id := r.URL.Query().Get("topic"), r.URL.Query().Get("id")
	if members, _ := d.refresh(r.Context()); !d.topicAllowed(w, r, topic, members) {
		return
	}
	dl, err := d.findDeadLetter(r.Context(), topic, id)
	if err != nil {
		d.render(w, r, "deadletter", "Dead letter", deadLetterView{Topic: topic}, err)
		return
	}
	v := deadLetterView{Topic: topic, DeadLetter: dl}
	if d.cfg.ShowPayloads {
		v.Payload = ops.Payload(dl.Value)
	}
	d.render(w, r, "deadletter", "Dead letter "+id, v, nil)
}

func (d *Dashboard) findDeadLetter(ctx context.Context, topic, id string) (*ops.DeadLetter, error) {
	p, o, err := ops.ParseID(id)
	if err != nil {
		return nil, err
	}
	dls, err := ops.ReadDeadLetters(ctx, d.admin, topic)
	if err != nil {
		return nil, err
	}
	for i := range dls {
		if dls[i].Partition == p && dls[i].Offset == o {
			return &dls[i], nil
		}
	}
	return nil, fmt.Errorf("no dead letter %s in %q", id, topic)
}

// replay re-enqueues the dead letters named by the form's ids.
func (d *Dashboard) replay(w http.ResponseWriter, r *http.Request) {
	who := whoOf(r.Context())
	if d.cfg.ReadOnly {
		d.cfg.Logger.Warn("ordo dashboard: replay refused: read-only", "who", who)
		http.Error(w, "403 forbidden: the dashboard is read-only", http.StatusForbidden)
		return
	}
	if !d.checkCSRF(r) {
		d.cfg.Logger.Warn("ordo dashboard: replay refused: missing or wrong CSRF token", "who", who)
		http.Error(w, "403 forbidden: missing or wrong CSRF token; reload the page", http.StatusForbidden)
		return
	}
	topic, ids := r.PostFormValue("topic"), r.PostForm["id"]
	if topic == "" || len(ids) == 0 {
		http.Error(w, "400 bad request: no dead letter selected", http.StatusBadRequest)
		return
	}
	if members, _ := d.refresh(r.Context()); !d.topicAllowed(w, r, topic, members) {
		return
	}
	dls, err := ops.ReadDeadLetters(r.Context(), d.admin, topic)
	var picked []ops.DeadLetter
	if err == nil {
		picked, err = ops.Select(dls, ops.Selection{IDs: ids})
	}
	var done []ops.Replayed
	if err == nil {
		producer, perr := d.producer()
		if err = perr; err == nil {
			done, err = ops.Replay(r.Context(), producer, picked, who)
		}
	}
	replayed := make([]string, len(done))
	for i, x := range done {
		replayed[i] = x.DeadLetter.ID()
	}
	if err != nil {
		d.cfg.Logger.Error("ordo dashboard: replay failed", "who", who, "topic", topic, "asked", ids, "replayed", replayed, "err", err)
		http.Error(w, "replay failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	d.cfg.Logger.Info("ordo dashboard: replayed dead letters", "who", who, "topic", topic, "asked", ids, "replayed", replayed)
	http.Redirect(w, r, "deadletters?"+url.Values{"topic": {topic}, "notice": {"replayed"},
		"n": {strconv.Itoa(len(done))}, "of": {strconv.Itoa(len(ids))}}.Encode(), http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Round(100*time.Millisecond).String() + " ago" },
	"offset": func(v int64) string {
		if v < 0 {
			return "–"
		}
		return strconv.FormatInt(v, 10)
	},
	"rate":  func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
	"clock": func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"short": func(s string, n int) string {
		if r := []rune(s); len(r) > n {
			return string(r[:n]) + "…"
		}
		return s
	},
	"q": func(topic, id string) template.URL {
		return template.URL(url.Values{"topic": {topic}, "id": {id}}.Encode()) // encoded: safe in an href
	},
	"str": func(b []byte) string { return string(b) },
}
