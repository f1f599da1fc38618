package jobs

import (
	"time"

	"github.com/ordo-go/ordo/internal/enqueue"
)

// JobArgs is the payload of a job: a plain struct that names its kind. The
// kind routes the job to its worker, so it must be stable across releases.
//
//	type SendEmailArgs struct {
//		To      string `msgpack:"to"`
//		Subject string `msgpack:"subject"`
//	}
//
//	func (SendEmailArgs) Kind() string { return "send_email" }
type JobArgs interface {
	Kind() string
}

// KeyType says what a job's partition value does on the wire, like Karafka's
// partition_key_type: KeyTypeKey or KeyTypePartitionKey.
type KeyType = enqueue.KeyType

const (
	// KeyTypeKey (the default) makes the value the Kafka message key: the
	// partition follows from it, and so does the consumer's default
	// virtual partition, so the job is ordered with every job of that key
	// end to end.
	KeyTypeKey = enqueue.KeyTypeKey
	// KeyTypePartitionKey uses the value only to choose the partition
	// (murmur2, like the Java client's default, so Go and JVM producers
	// agree); the message carries no key, and such jobs run in partition
	// order on the consumer.
	KeyTypePartitionKey = enqueue.KeyTypePartitionKey
)

// Partitioning is a job's partition value and its key type: a struct of
// Value string and Type KeyType (KeyTypeKey when left zero).
//
//	jobs.Partitioning{Value: a.UserID, Type: jobs.KeyTypePartitionKey}
type Partitioning = enqueue.Partitioning

// PartitionedArgs is implemented by job args that choose their own partition,
// like Karafka's `partitioner:` option: all jobs with the same value land on
// one partition, in enqueue order.
//
//	func (a OrderUpdateArgs) Partitioning() jobs.Partitioning {
//		return jobs.Partitioning{Value: a.UserID}
//	}
type PartitionedArgs interface {
	JobArgs
	Partitioning() Partitioning
}

// Job is one job handed to a worker: its args and what the envelope and the
// record say about it.
type Job[T JobArgs] struct {
	// ID is unique per enqueue.
	ID string
	// Kind is Args.Kind().
	Kind string
	// Args are the decoded args.
	Args T
	// EnqueuedAt is when Enqueue was called.
	EnqueuedAt time.Time
	// Attempt counts runs of this job, from 1.
	Attempt int
	// Metadata was attached at enqueue (WithMetadata).
	Metadata map[string]string
	// Topic, Partition and Offset locate the job's record.
	Topic     string
	Partition int
	Offset    int64
	// Key is the record's Kafka key (empty for partition-key jobs).
	Key []byte
	// Headers are the record's headers: ordo's own (HeaderKind,
	// HeaderJobID, ...), those given with WithHeaders, and, for a job read
	// back from a dead-letter topic, the dead-letter headers (HeaderError,
	// HeaderSourceTopic, ...). Work must not modify them.
	Headers []Header
}

// Header names ordo puts on job records and dead letters. The kind travels in
// a header so routing and the dead-letter path never need to decode a value.
const (
	HeaderKind         = "ordo-kind"
	HeaderJobID        = "ordo-job-id"
	HeaderPartitionKey = "ordo-partition-key"

	// Dead-letter headers, named like Karafka's.
	HeaderSourceTopic     = "source_topic"
	HeaderSourcePartition = "source_partition"
	HeaderSourceOffset    = "source_offset"
	HeaderSourceGroup     = "source_consumer_group"
	HeaderSourceAttempts  = "source_attempts"
	HeaderSourceKind      = "source_kind"
	HeaderError           = "error"
	// HeaderArgsDropped is on a dead letter written without the job's
	// value (its args) because the broker refused it as too large with
	// them; it says why. The job is at its source_topic, source_partition
	// and source_offset until the topic's retention removes it.
	HeaderArgsDropped = "ordo-args-dropped"

	// Replay headers, written by `ordo dlq replay` and the dashboard. A
	// replayed job carries HeaderReplays: how many times it was replayed.
	// The replay also appends a marker to the dead-letter topic, a record
	// with an empty value whose HeaderReplayOf names the dead letter as
	// "<partition>/<offset>", so that tools count it as replayed. A Server
	// reading a dead-letter topic commits a marker without running it.
	HeaderReplays  = "ordo-replays"
	HeaderReplayOf = "ordo-replay-of"
)
