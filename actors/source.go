package actors

import (
	"context"

	"github.com/ordo-go/ordo/kafka"
)

// Handler does the work of one record. It runs inside the record's KeyActor:
// never concurrently with another record of the same virtual-partition key,
// and only after every earlier record of that key finished. A returned error
// is retried under the runtime's RetryPolicy.
type Handler func(ctx context.Context, r kafka.Record) error

// RecordSource is one assigned partition's record stream for one generation.
// kafka.Claim implements it; tests implement it in memory.
type RecordSource interface {
	// Fetch returns up to max records following the previous call, and
	// the offset the next call starts at. It may return no records. After
	// the generation ends it returns an error.
	Fetch(ctx context.Context, max int) (records []kafka.Record, next int64, err error)
}

// Generation is one period of group membership. kafka.Session implements it.
type Generation interface {
	// GenerationID is the group generation's number.
	GenerationID() int32
	// Done is closed when the partitions are revoked or the member stops.
	Done() <-chan struct{}
	// Stopping tells whether Done closed because the member is shutting
	// down (true) or because of a rebalance (false).
	Stopping() bool
	// Commit commits offsets in one request bound to this generation.
	Commit(ctx context.Context, offsets ...kafka.Offset) error
}

// Assignment is one partition handed to the runtime for a generation.
type Assignment struct {
	Topic     string
	Partition int
	// Start is the first offset the source will return; negative when the
	// group has no committed offset and the log start is not yet known.
	Start int64
	// StartMetadata is the commit metadata stored with Start by an earlier
	// owner: the records above Start that already finished, which are not
	// run again.
	StartMetadata string
	Source        RecordSource
}
