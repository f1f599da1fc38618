package enqueue

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/middleware"
	"github.com/ordo-go/ordo/internal/schedule"
	"github.com/ordo-go/ordo/kafka"
)

// Names package jobs exports (jobs.HeaderPeriodicTick, ...), spelled here
// too since this package cannot import jobs;
// TestInternalPackagesSpellJobsNamesAlike (jobs) keeps the two alike.
const (
	HeaderPeriodicTick = "ordo-periodic-tick"
	// ScheduleSuffix names a topic's schedules topic (jobs.DefaultScheduleSuffix).
	ScheduleSuffix = ".schedule"
)

var (
	// ErrInvalid is jobs.ErrInvalidEnqueue.
	ErrInvalid = errors.New("jobs: invalid enqueue")
	// ErrClosed is jobs.ErrClientClosed.
	ErrClosed = errors.New("jobs: client is closed")
)

// Args are a job's args: jobs.JobArgs.
type Args interface {
	Kind() string
}

// KeyType is jobs.KeyType: what a job's partition value does on the wire.
type KeyType int

// The key types, as jobs documents them.
const (
	KeyTypeKey KeyType = iota
	KeyTypePartitionKey
)

// Partitioning is jobs.Partitioning: a job's partition value and its key
// type.
type Partitioning struct {
	Value string
	Type  KeyType
}

// partitioned is jobs.PartitionedArgs.
type partitioned interface {
	Partitioning() Partitioning
}

// Info is jobs.JobInfo, field for field, so that it converts to it.
type Info struct {
	ID           string
	Kind         string
	Topic        string
	Key          string
	PartitionKey string
	Partition    int
	Offset       int64
	EnqueuedAt   time.Time
	RunAt        time.Time
}

// Draft is a job before its record is encoded: the envelope's args and the
// record's headers are what Enqueue middleware may still change.
type Draft struct {
	env  envelope.Envelope
	msg  kafka.Message // without its Value
	Info Info
}

// Raw returns what Enqueue middleware sees of d.
func (d *Draft) Raw() middleware.Raw {
	return middleware.Raw{Kind: d.env.Kind, ID: d.env.ID, Headers: d.msg.Headers, Args: d.env.Args}
}

// SetRaw takes the headers and args middleware left; the kind and id stay.
func (d *Draft) SetRaw(r middleware.Raw) {
	d.msg.Headers, d.env.Args = r.Headers, r.Args
}

// Prepare builds a job's record: the job itself, or, for a job to run
// later, its schedule record (see schedule.go). partitions tells the
// partition count of a schedules topic; nil (jobstest, the bench, a periodic
// job's check) takes one. Its errors say what is wrong with the call,
// unwrapped: a Client wraps them in ErrInvalid, a server's check of its
// periodic jobs names the job.
func Prepare(defaultTopic string, args Args, o *Options, now time.Time, partitions func(topic string) (int, error)) (kafka.Message, Info, error) {
	d, err := NewDraft(defaultTopic, args, o, now, partitions)
	if err != nil {
		return kafka.Message{}, Info{}, err
	}
	msg, err := d.Record()
	if err != nil {
		return kafka.Message{}, Info{}, err
	}
	return msg, d.Info, nil
}

// NewDraft checks the call and builds the job, as Prepare does, up to its
// record.
func NewDraft(defaultTopic string, args Args, o *Options, now time.Time, partitions func(topic string) (int, error)) (Draft, error) {
	var none Draft
	if Nil(args) {
		return none, fmt.Errorf("args are nil (%T)", args)
	}
	kind := args.Kind()
	if kind == "" {
		return none, fmt.Errorf("%T.Kind() returned an empty kind", args)
	}
	if name := o.periodicOnly(); name != "" {
		return none, fmt.Errorf("%s job: %s is for jobs.Periodic only", kind, name)
	}
	topic := o.Topic
	if o.TopicSet {
		if err := kafka.CheckTopicName(topic); err != nil {
			return none, fmt.Errorf("%s job: WithTopic: %w", kind, err)
		}
	} else {
		topic = defaultTopic
	}
	if topic == "" {
		return none, fmt.Errorf("%s job has no topic: set ClientConfig.Topic or pass WithTopic", kind)
	}
	key, partitionKey, err := partitioning(args, o)
	if err != nil {
		return none, fmt.Errorf("%s job: %w", kind, err)
	}
	for name := range o.Headers {
		if reservedHeader(name) {
			return none, fmt.Errorf("%s job: WithHeaders: header %q is set by ordo", kind, name)
		}
	}
	runAt, scheduled, err := o.when(now)
	if err != nil {
		return none, fmt.Errorf("%s job: %w", kind, err)
	}
	rawArgs, err := msgpack.Marshal(args)
	if err != nil {
		return none, fmt.Errorf("encode args of %s job (%T): %w", kind, args, err)
	}
	id := o.ID
	if id == "" {
		id = envelope.NewID(now)
	}
	if scheduled {
		if id, err = scheduleID(now, topic, key, partitionKey, partitions); err != nil {
			return none, &scheduleLookupError{err}
		}
	}
	info := Info{ID: id, Kind: kind, Topic: topic, Key: key, PartitionKey: partitionKey,
		Partition: -1, Offset: -1, EnqueuedAt: now, RunAt: runAt}
	headers := make([]kafka.Header, 0, 6+len(o.Headers)+len(o.OrdoHeaders))
	headers = append(headers, kafka.Header{Key: envelope.HeaderKind, Value: []byte(kind)}, kafka.Header{Key: envelope.HeaderJobID, Value: []byte(info.ID)})
	msg := kafka.Message{Topic: topic}
	if key != "" {
		msg.Key = []byte(key)
	}
	if partitionKey != "" {
		msg.PartitionKey = []byte(partitionKey)
		headers = append(headers, kafka.Header{Key: schedule.HeaderPartitionKey, Value: msg.PartitionKey})
	}
	for _, name := range slices.Sorted(maps.Keys(o.Headers)) {
		headers = append(headers, kafka.Header{Key: name, Value: []byte(o.Headers[name])})
	}
	msg.Headers = append(headers, o.OrdoHeaders...)
	env := envelope.Envelope{Version: envelope.Version, Kind: kind, ID: info.ID, Args: rawArgs, EnqueuedAt: now, Metadata: o.Metadata}
	return Draft{env: env, msg: msg, Info: info}, nil
}

// Record encodes the job's record: the job itself, or its schedule record.
func (d *Draft) Record() (kafka.Message, error) {
	value, err := envelope.Encode(&d.env)
	if err != nil {
		return kafka.Message{}, err
	}
	msg := d.msg
	msg.Value = value
	if !d.Info.RunAt.IsZero() {
		msg = scheduleRecord(msg, d.Info.ID, d.Info.RunAt)
	}
	return msg, nil
}

// partitioning returns the job's key and partition key: from the options
// when either is given, else from the args' Partitioning. An empty value is
// refused rather than sent without a key, since that would silently lose the
// job's order.
func partitioning(args Args, o *Options) (key, partitionKey string, err error) {
	if o.KeySet || o.PartitionKeySet {
		if o.KeySet && o.Key == "" {
			return "", "", errors.New("WithKey: the key is empty")
		}
		if o.PartitionKeySet && o.PartitionKey == "" {
			return "", "", errors.New("WithPartitionKey: the partition key is empty")
		}
		return o.Key, o.PartitionKey, nil
	}
	pa, ok := args.(partitioned)
	if !ok {
		return "", "", nil
	}
	p := pa.Partitioning()
	if p.Value == "" {
		return "", "", fmt.Errorf("%T.Partitioning() returned an empty Value", args)
	}
	switch p.Type {
	case KeyTypeKey:
		return p.Value, "", nil
	case KeyTypePartitionKey:
		return "", p.Value, nil
	default:
		return "", "", fmt.Errorf("%T.Partitioning() returned an unknown KeyType %d", args, p.Type)
	}
}

// Nil tells args that are nil, or a nil pointer, map, slice, func, chan or
// interface: no job.
func Nil(args Args) bool {
	if args == nil {
		return true
	}
	switch v := reflect.ValueOf(args); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}

// reservedHeader tells the header names ordo sets, which WithHeaders
// refuses.
func reservedHeader(name string) bool {
	switch name {
	case envelope.HeaderKind, envelope.HeaderJobID, schedule.HeaderPartitionKey, schedule.HeaderRunAt, schedule.HeaderTargetTopic, schedule.HeaderTargetKey,
		schedule.HeaderCancel, schedule.HeaderCancelOutcome, schedule.HeaderCancelOffset, schedule.HeaderDispatched,
		HeaderPeriodicTick, schedule.HeaderPeriodic:
		return true
	}
	return false
}
