// Package status is the wire format of the status reports that each
// jobs.Server publishes to the status topic, and the rules for reading
// them: one JSON record per server, keyed by group and member, replaced by
// the next report, deleted (a tombstone) when the server stops.
//
// A server's Reporter writes them from its Tally of what its jobs did and
// what its Source (the server) holds; cmd/ordo and package dashboard read
// them.
// A report carries counts, positions and error messages, never job args,
// credentials or other configuration.
package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Version is the report format written here. Readers skip fields they do not
// know, so a later version may only add fields.
const Version = 1

// DefaultTopic is where servers publish their reports unless configured
// otherwise.
const DefaultTopic = "__ordo_status"

// DefaultInterval is how often a server publishes.
const DefaultInterval = 5 * time.Second

// MaxErrors is how many of its most recent job errors a report carries.
const MaxErrors = 20

// MaxErrorMessage caps one error message in a report, in bytes.
const MaxErrorMessage = 500

// Report is one server's state at At.
type Report struct {
	Version int    `json:"v"`
	Group   string `json:"group"`
	// Member names the server among its group's: its InstanceID when it
	// has one, else its host and a random suffix chosen at NewServer.
	Member      string    `json:"member"`
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	OrdoVersion string    `json:"version"`
	Started     time.Time `json:"started"`
	At          time.Time `json:"at"`
	// IntervalMS is the publishing period: a report older than a few of
	// these belongs to a server that is gone.
	IntervalMS      int64        `json:"interval_ms"`
	Topics          []string     `json:"topics"`
	DeadLetterTopic string       `json:"dead_letter_topic"`
	Rebalances      int64        `json:"rebalances"`
	Partitions      []Partition  `json:"partitions"`
	Kinds           []KindCounts `json:"kinds"`
	// Errors are the most recent job failures, newest first.
	Errors []JobError `json:"errors"`
}

// Partition is one assigned partition.
type Partition struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Committed is the last committed offset (the next to consume); -1
	// before the first commit is known.
	Committed int64 `json:"committed"`
	// HighWatermark is the end offset as last fetched; -1 when unknown.
	HighWatermark int64 `json:"high_watermark"`
	// Lag is HighWatermark - Committed; -1 when either is unknown.
	Lag      int64 `json:"lag"`
	Buffered int   `json:"buffered"`
	// Prefetched counts records fetched and not yet handed to their keys
	// (jobs.PartitionStats.Prefetched); 0 in reports of servers before it.
	Prefetched int   `json:"prefetched,omitempty"`
	InFlight   int   `json:"in_flight"`
	KeyActors  int   `json:"key_actors"`
	Generation int32 `json:"generation"`
}

// KindCounts are a kind's totals since the server started and its rates,
// per second, over the last period.
type KindCounts struct {
	Kind             string  `json:"kind"`
	Processed        int64   `json:"processed"`
	Failed           int64   `json:"failed"`
	Retried          int64   `json:"retried"`
	DeadLettered     int64   `json:"dead_lettered"`
	ProcessedRate    float64 `json:"processed_per_s"`
	FailedRate       float64 `json:"failed_per_s"`
	RetriedRate      float64 `json:"retried_per_s"`
	DeadLetteredRate float64 `json:"dead_lettered_per_s"`
}

// JobError is one failed run of a job. It never holds the job's args.
type JobError struct {
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	JobID     string    `json:"job_id"`
	Key       string    `json:"key"`
	Topic     string    `json:"topic"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Attempt   int       `json:"attempt"`
	Message   string    `json:"message"`
	// DeadLettered tells whether this failure sent the job to the
	// dead-letter topic.
	DeadLettered bool `json:"dead_lettered"`
}

// Key is the record key of a member's reports: each report replaces the
// previous one in the compacted topic.
func Key(group, member string) []byte { return []byte(group + "\x00" + member) }

// ErrMalformed is wrapped by Decode's errors.
var ErrMalformed = errors.New("status: malformed report")

// Encode returns r as JSON.
func Encode(r *Report) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("status: encode report: %w", err)
	}
	return b, nil
}

// Decode reads a report.
func Decode(b []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if r.Version < 1 || r.Group == "" || r.Member == "" {
		return nil, fmt.Errorf("%w: version %d, group %q, member %q", ErrMalformed, r.Version, r.Group, r.Member)
	}
	return &r, nil
}

// Gone tells whether the member that wrote r has stopped reporting: nothing
// new for three periods (and at least 15 s, so one slow write is no
// departure).
func Gone(r *Report, now time.Time) bool {
	return now.Sub(r.At) > StaleAfter(r)
}

// StaleAfter is how long after its last report a member counts as gone.
func StaleAfter(r *Report) time.Duration {
	return max(3*time.Duration(r.IntervalMS)*time.Millisecond, 15*time.Second)
}

// TruncateMessage shortens an error message to about MaxErrorMessage
// bytes, dropping a rune cut in two.
func TruncateMessage(s string) string {
	if len(s) <= MaxErrorMessage {
		return s
	}
	return strings.ToValidUTF8(s[:MaxErrorMessage], "") + "…"
}
