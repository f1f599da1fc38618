package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// DeadLetter is one record of a dead-letter topic, with its dead-letter
// headers read out.
type DeadLetter struct {
	Topic     string
	Partition int
	Offset    int64
	Time      time.Time
	Key       []byte
	Value     []byte
	Headers   []kafka.Header

	Kind, JobID, Reason string
	SourceTopic         string
	SourcePartition     int
	SourceOffset        int64
	SourceGroup         string
	Attempts            int
	// Replays is how many times the job had been replayed before it died
	// this time (its HeaderReplays).
	Replays int
	// ReplayedAt holds one entry per replay of this dead letter, as the
	// markers in the topic say.
	ReplayedAt []time.Time
	// ArgsDropped says why the dead letter has no value (its
	// HeaderArgsDropped): the job is at its source offset. Empty when the
	// value is the job's.
	ArgsDropped string
}

// ID names the dead letter in its topic: "<partition>/<offset>".
func (d *DeadLetter) ID() string { return fmt.Sprintf("%d/%d", d.Partition, d.Offset) }

// Replayed tells whether the dead letter was replayed.
func (d *DeadLetter) Replayed() bool { return len(d.ReplayedAt) > 0 }

func headerValue(hs []kafka.Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func newDeadLetter(r *kafka.Record) DeadLetter {
	h := func(k string) string { v, _ := headerValue(r.Headers, k); return v }
	atoi := func(k string) int { n, _ := strconv.Atoi(h(k)); return n }
	d := DeadLetter{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Time: r.Time,
		Key: r.Key, Value: r.Value, Headers: r.Headers,
		Kind: cmp.Or(h(jobs.HeaderSourceKind), h(jobs.HeaderKind)), JobID: h(jobs.HeaderJobID), Reason: h(jobs.HeaderError),
		SourceTopic: h(jobs.HeaderSourceTopic), SourcePartition: atoi(jobs.HeaderSourcePartition),
		SourceGroup: h(jobs.HeaderSourceGroup), Attempts: atoi(jobs.HeaderSourceAttempts), Replays: atoi(jobs.HeaderReplays),
		ArgsDropped: h(jobs.HeaderArgsDropped),
	}
	d.SourceOffset, _ = strconv.ParseInt(h(jobs.HeaderSourceOffset), 10, 64)
	return d
}

// ParseID reads a dead letter's "<partition>/<offset>".
func ParseID(s string) (partition int, offset int64, err error) {
	p, o, ok := strings.Cut(s, "/")
	if ok {
		partition, err = strconv.Atoi(p)
	}
	if ok && err == nil {
		offset, err = strconv.ParseInt(o, 10, 64)
	}
	if !ok || err != nil || partition < 0 || offset < 0 {
		return 0, 0, fmt.Errorf("ops: %q is not a dead letter id <partition>/<offset>", s)
	}
	return partition, offset, nil
}

// ErrNotDeadLetterTopic is returned by ReadDeadLetters for a topic whose
// records are not dead letters (none carries the dead-letter headers), such
// as a topic of jobs given by mistake: listed, its jobs would look like dead
// letters without a reason.
var ErrNotDeadLetterTopic = errors.New("holds no dead letters (is it a dead-letter topic? they end in \".dlq\")")

// notDeadLettersAfter is how many records without the dead-letter headers,
// and none with them, make a topic not a dead-letter topic: reading stops
// there rather than read a whole topic of jobs.
const notDeadLettersAfter = 100

// ReadDeadLetters reads every dead letter of topic, in partition and offset
// order, with the replays the topic's markers record. Markers are not dead
// letters. A topic with records of which none is a dead letter is
// ErrNotDeadLetterTopic.
func ReadDeadLetters(ctx context.Context, admin *kafka.Admin, topic string) ([]DeadLetter, error) {
	start, err := admin.StartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("ops: dead-letter topic %q: %w", topic, err)
	}
	end, err := admin.EndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("ops: dead-letter topic %q: %w", topic, err)
	}
	var out []DeadLetter
	anyDeadLetter := false
	replays := map[string][]time.Time{}
	for _, p := range sortedPartitions(end) {
		_, err := scan(ctx, admin, topic, p, start[p], end[p], func(r *kafka.Record) bool {
			if of, ok := headerValue(r.Headers, jobs.HeaderReplayOf); ok && len(r.Value) == 0 {
				replays[of] = append(replays[of], r.Time)
				return true
			}
			out = append(out, newDeadLetter(r))
			anyDeadLetter = anyDeadLetter || isDeadLetter(r)
			return anyDeadLetter || len(out) < notDeadLettersAfter
		})
		if err != nil {
			return nil, fmt.Errorf("ops: dead-letter topic %q: %w", topic, err)
		}
		if !anyDeadLetter && len(out) >= notDeadLettersAfter {
			break
		}
	}
	if !anyDeadLetter && len(out) > 0 {
		return nil, fmt.Errorf("ops: topic %q %w", topic, ErrNotDeadLetterTopic)
	}
	for i := range out {
		out[i].ReplayedAt = replays[out[i].ID()]
	}
	return out, nil
}

// isDeadLetter tells whether a dead-letter writer wrote r: it names its
// source or its reason.
func isDeadLetter(r *kafka.Record) bool {
	_, source := headerValue(r.Headers, jobs.HeaderSourceTopic)
	_, reason := headerValue(r.Headers, jobs.HeaderError)
	return source || reason
}

func sortedPartitions(m map[int]int64) []int {
	ps := make([]int, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// Selection picks dead letters to replay. The zero Selection picks none:
// set All, or narrow by partition and offsets, by kind, or by ids.
type Selection struct {
	All bool
	// Partition, when not nil, keeps only that partition, and From and
	// To (inclusive; To < 0 means no end) only offsets within.
	Partition *int
	From, To  int64
	// Kind keeps only dead letters of that kind.
	Kind string
	// IDs keeps only the dead letters "<partition>/<offset>" named.
	IDs []string
	// IncludeReplayed picks dead letters that were replayed already too;
	// by default a replayed dead letter is not replayed again.
	IncludeReplayed bool
}

// ErrEmptySelection is returned by Select for a Selection that names
// nothing: replaying a whole topic must be asked for with All.
var ErrEmptySelection = errors.New("ops: nothing selected: give --all, --partition with --from/--to, --kind, or ids")

// Select returns the dead letters sel picks.
func Select(dls []DeadLetter, sel Selection) ([]DeadLetter, error) {
	if !sel.All && sel.Partition == nil && sel.Kind == "" && len(sel.IDs) == 0 {
		return nil, ErrEmptySelection
	}
	var out []DeadLetter
	for _, d := range dls {
		switch {
		case d.Replayed() && !sel.IncludeReplayed:
		case sel.Partition != nil && (d.Partition != *sel.Partition || d.Offset < sel.From || (sel.To >= 0 && d.Offset > sel.To)):
		case sel.Kind != "" && d.Kind != sel.Kind:
		case len(sel.IDs) > 0 && !slices.Contains(sel.IDs, d.ID()):
		default:
			out = append(out, d)
		}
	}
	return out, nil
}

// deadLetterHeaders are the headers a dead-letter writer adds, which a
// replayed job leaves behind.
var deadLetterHeaders = []string{
	jobs.HeaderSourceTopic, jobs.HeaderSourcePartition, jobs.HeaderSourceOffset, jobs.HeaderSourceGroup,
	jobs.HeaderSourceAttempts, jobs.HeaderSourceKind, jobs.HeaderError, jobs.HeaderReplays,
}

// ReplayMessage is the job record a replay of d writes: to its source topic,
// with its key, its partition key (from HeaderPartitionKey), its value and
// its headers without the dead-letter ones, and HeaderReplays one more than
// before.
func ReplayMessage(d *DeadLetter) (kafka.Message, error) {
	if d.SourceTopic == "" {
		return kafka.Message{}, fmt.Errorf("ops: dead letter %s has no %s header; it cannot be replayed", d.ID(), jobs.HeaderSourceTopic)
	}
	if err := kafka.CheckTopicName(d.SourceTopic); err != nil {
		return kafka.Message{}, fmt.Errorf("ops: dead letter %s names a source topic that cannot exist; it cannot be replayed: %w", d.ID(), err)
	}
	if d.ArgsDropped != "" {
		return kafka.Message{}, fmt.Errorf("ops: dead letter %s was written without the job's args (%s); the job is at %s partition %d offset %d",
			d.ID(), d.ArgsDropped, d.SourceTopic, d.SourcePartition, d.SourceOffset)
	}
	msg := kafka.Message{Topic: d.SourceTopic, Key: d.Key, Value: d.Value}
	if pk, ok := headerValue(d.Headers, jobs.HeaderPartitionKey); ok && pk != "" {
		msg.PartitionKey = []byte(pk)
	}
	for _, h := range d.Headers {
		if !slices.Contains(deadLetterHeaders, h.Key) {
			msg.Headers = append(msg.Headers, h)
		}
	}
	msg.Headers = append(msg.Headers, kafka.Header{Key: jobs.HeaderReplays, Value: []byte(strconv.Itoa(d.Replays + 1))})
	return msg, nil
}

// Replayed is one dead letter put back.
type Replayed struct {
	DeadLetter *DeadLetter
	// To is where the job was written.
	To kafka.Delivery
}

// Replay writes each dead letter back to its source topic, in the order
// given (which keeps a key's jobs in order when dls is in offset order),
// then marks each replayed in the dead-letter topic. by names who asked,
// for the markers. Nothing is written when one of dls cannot be replayed.
func Replay(ctx context.Context, producer *kafka.Producer, dls []DeadLetter, by string) ([]Replayed, error) {
	msgs := make([]kafka.Message, len(dls))
	for i := range dls {
		var err error
		if msgs[i], err = ReplayMessage(&dls[i]); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	ds, err := producer.ProduceSync(ctx, msgs...)
	out := make([]Replayed, 0, len(dls))
	markers := make([]kafka.Message, 0, len(dls))
	var failed []error
	if pe := (*kafka.ProduceError)(nil); errors.As(err, &pe) {
		failed = pe.Errs
	} else if err != nil {
		return nil, fmt.Errorf("ops: replay %d dead letters: %w", len(dls), err)
	}
	for i := range dls {
		if failed != nil && failed[i] != nil {
			continue
		}
		out = append(out, Replayed{DeadLetter: &dls[i], To: ds[i]})
		markers = append(markers, kafka.Message{Topic: dls[i].Topic, Key: dls[i].Key, Headers: []kafka.Header{
			{Key: jobs.HeaderReplayOf, Value: []byte(dls[i].ID())},
			{Key: "ordo-replayed-to", Value: fmt.Appendf(nil, "%s/%d/%d", ds[i].Topic, ds[i].Partition, ds[i].Offset)},
			{Key: "ordo-replayed-by", Value: []byte(by)},
		}})
	}
	var markErr error
	if len(markers) > 0 {
		if _, err := producer.ProduceSync(ctx, markers...); err != nil {
			markErr = fmt.Errorf("ops: the jobs were replayed, but marking them replayed in the dead-letter topic failed (a later replay would run them again): %w", err)
		}
	}
	if err != nil {
		return out, errors.Join(fmt.Errorf("ops: replay: %d of %d dead letters were not written: %w", len(dls)-len(out), len(dls), err), markErr)
	}
	return out, markErr
}
