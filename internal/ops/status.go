// Package ops is what an operator does to a running ordo, over Kafka alone:
// read the servers' status reports, browse and replay dead letters, and
// enqueue a job given as JSON. cmd/ordo and package dashboard are its two
// faces; neither holds any of this logic itself.
//
// It reads topics without a consumer group (kafka.Admin.Read), so looking
// leaves no trace on the cluster, and writes through the one kafka.Producer.
package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ordo-go/ordo/internal/status"
	"github.com/ordo-go/ordo/kafka"
)

// ErrNoStatusTopic is returned by StatusReader.Refresh when the status topic
// does not exist: no server with status reports on has started against this
// cluster.
var ErrNoStatusTopic = errors.New("ops: the status topic does not exist; no server has reported yet")

// readMaxBytes is how much one read asks the broker for.
const readMaxBytes = 4 << 20

// scan calls fn for every record of topic/partition in [from, to).
func scan(ctx context.Context, admin *kafka.Admin, topic string, partition int, from, to int64, fn func(*kafka.Record) (more bool)) (next int64, err error) {
	next = from
	for next < to {
		recs, err := admin.Read(ctx, topic, partition, next, readMaxBytes)
		if err != nil {
			return next, err
		}
		if len(recs) == 0 {
			// Compaction or transaction markers may leave offsets below
			// the end with nothing to read.
			return to, nil
		}
		for i := range recs {
			if recs[i].Offset >= to {
				return to, nil
			}
			next = recs[i].Offset + 1
			if !fn(&recs[i]) {
				return next, nil
			}
		}
	}
	return next, nil
}

// Member is one server as its last report shows it.
type Member struct {
	*status.Report
	// Gone is set when the member has not reported for longer than
	// status.StaleAfter.
	Gone bool
}

// Uptime is how long the member had run at its last report.
func (m Member) Uptime() time.Duration { return m.At.Sub(m.Started).Round(time.Second) }

// Age is how old the member's last report is at now.
func (m Member) Age(now time.Time) time.Duration { return now.Sub(m.At).Round(100 * time.Millisecond) }

// StatusReader keeps the latest report of every member of every group. Each
// Refresh reads only what was published since the previous one. It is safe
// for concurrent use.
type StatusReader struct {
	admin *kafka.Admin
	topic string
	// forget drops members gone for longer than this.
	forget time.Duration

	mu      sync.Mutex
	next    map[int]int64
	reports map[string]*status.Report // by status.Key
}

// NewStatusReader reads the status topic topic (status.DefaultTopic when
// empty).
func NewStatusReader(admin *kafka.Admin, topic string) *StatusReader {
	return &StatusReader{admin: admin, topic: cmp.Or(topic, status.DefaultTopic), forget: 24 * time.Hour,
		next: map[int]int64{}, reports: map[string]*status.Report{}}
}

// Topic is the status topic read.

// Refresh reads the reports published since the last call.
func (s *StatusReader) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	have, err := s.admin.Partitions(ctx, s.topic)
	if err != nil {
		return fmt.Errorf("ops: status topic %q: %w", s.topic, err)
	}
	if _, ok := have[s.topic]; !ok {
		return fmt.Errorf("%w (topic %q)", ErrNoStatusTopic, s.topic)
	}
	end, err := s.admin.EndOffsets(ctx, s.topic)
	if err != nil {
		return fmt.Errorf("ops: status topic: %w", err)
	}
	for p, to := range end {
		from, ok := s.next[p]
		if !ok {
			start, err := s.admin.StartOffsets(ctx, s.topic)
			if err != nil {
				return fmt.Errorf("ops: status topic: %w", err)
			}
			from = start[p]
		}
		next, err := scan(ctx, s.admin, s.topic, p, from, to, func(r *kafka.Record) bool {
			key := string(r.Key)
			if len(r.Value) == 0 {
				delete(s.reports, key) // the member stopped
				return true
			}
			if rep, err := status.Decode(r.Value); err == nil {
				s.reports[key] = rep
			}
			return true
		})
		s.next[p] = next
		if err != nil {
			return fmt.Errorf("ops: status topic: %w", err)
		}
	}
	return nil
}

// Members returns the members known at now, sorted by group and member;
// those gone for longer than a day are left out.
func (s *StatusReader) Members(now time.Time) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Member
	for _, key := range slices.Sorted(maps.Keys(s.reports)) {
		r := s.reports[key]
		if now.Sub(r.At) > s.forget {
			continue
		}
		out = append(out, Member{Report: r, Gone: status.Gone(r, now)})
	}
	slices.SortStableFunc(out, func(a, b Member) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Member, b.Member))
	})
	return out
}

// Overview sums the live members' reports.
type Overview struct {
	Groups, Members, Gone, Partitions int
	// Rates are per second over the members' last periods.
	ProcessedRate, FailedRate, RetriedRate, DeadLetteredRate float64
	Processed, Failed, DeadLettered                          int64
	// Lag sums the partitions' lag.
	Lag int64
}

// Summarize sums members that are not gone.
func Summarize(members []Member) Overview {
	var o Overview
	groups := map[string]bool{}
	for _, m := range members {
		if m.Gone {
			o.Gone++
			continue
		}
		groups[m.Group] = true
		o.Members++
		o.Partitions += len(m.Partitions)
		for _, p := range m.Partitions {
			o.Lag += max(p.Lag, 0)
		}
		for _, k := range m.Kinds {
			o.ProcessedRate += k.ProcessedRate
			o.FailedRate += k.FailedRate
			o.RetriedRate += k.RetriedRate
			o.DeadLetteredRate += k.DeadLetteredRate
			o.Processed += k.Processed
			o.Failed += k.Failed
			o.DeadLettered += k.DeadLettered
		}
	}
	o.Groups = len(groups)
	return o
}

// RecentErrors merges the members' last errors, newest first, at most n.
func RecentErrors(members []Member, n int) []MemberError {
	var out []MemberError
	for _, m := range members {
		for _, e := range m.Errors {
			out = append(out, MemberError{Group: m.Group, Member: m.Member, JobError: e})
		}
	}
	slices.SortStableFunc(out, func(a, b MemberError) int { return b.At.Compare(a.At) })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// MemberError is a job error and the member it happened on.
type MemberError struct {
	Group, Member string
	status.JobError
}

// PartitionRow is one partition a live member holds, as the status page and
// the dashboard list them.
type PartitionRow struct {
	Group, Member string
	status.Partition
}

// PartitionRows lists the partitions of the members not gone, by group,
// topic and partition.
func PartitionRows(members []Member) []PartitionRow {
	var rows []PartitionRow
	for _, m := range members {
		if m.Gone {
			continue
		}
		for _, p := range m.Partitions {
			rows = append(rows, PartitionRow{Group: m.Group, Member: m.Member, Partition: p})
		}
	}
	slices.SortStableFunc(rows, func(a, b PartitionRow) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition.Partition, b.Partition.Partition))
	})
	return rows
}
