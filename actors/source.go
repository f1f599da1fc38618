package actors

import (
	"context"

	"github.com/ordo-go/ordo/kafka"
)

// Handler does the work of one record and says what follows: Done, Retry
// after a delay, or Hold until released. It runs inside the record's key
// actor, on one of the runtime's pool goroutines: never concurrently with
// another record of the same virtual-partition key, and only after every
// earlier record of that key finished. attempt counts its runs of this
// record, from 1. r stays valid until the record finishes (or its partition
// is revoked); a Hold may keep using it until then.
//
// A Handler should not panic: package jobs turns every panic of a job into
// an Outcome. If one does, the key actor's supervision strategy decides (see
// Config.KeyActorStrategy).
type Handler func(ctx context.Context, r *kafka.Record, attempt int) Outcome

// RecordSource is one assigned partition's record stream. kafka.Claim
// implements it; tests implement it in memory.
type RecordSource interface {
	// Fetch appends up to max records following the previous call to dst,
	// and returns the offset the next call starts at. It may append no
	// records. After the partition is revoked it returns an error. The
	// records must own their bytes: the runtime reuses dst once it has
	// copied the records out.
	Fetch(ctx context.Context, dst []kafka.Record, max int) (records []kafka.Record, next int64, err error)
}

// Generation is the group membership a partition is held in: it names the
// generation and commits for it. kafka.Session implements it.
type Generation interface {
	// GenerationID is the group generation's number.
	GenerationID() int32
	// Commit commits offsets in one request bound to this generation.
	Commit(ctx context.Context, offsets ...kafka.Offset) error
}

// Assignment is one partition handed to the runtime.
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
	// Generation commits the partition's offsets.
	Generation Generation
}
