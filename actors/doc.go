// Package actors is ordo's concurrency core, built on protoactor-go, and its
// record-level API: a service whose records are not jobs runs a Handler over
// a kafka.Consumer with the same guarantees package jobs has (see
// ExampleRuntime).
//
// # What is public, and what is not
//
// Public, for services that embed the runtime: Runtime and its Config,
// Handler and Outcome (Done, Retry, Hold and Release), batches (BatchRule,
// BatchHandler, BatchRecord, BatchOutcome with BatchDone, BatchFailed and
// HoldBatch), Assignment with the
// RecordSource, HighWatermarkSource and Generation interfaces a source of
// records implements, PartitionStats, VirtualKeyFunc and KeyOfRecord,
// KeyState, and the context helpers a handler uses (Revoked, RevokedChan,
// VirtualKey, GenerationID, KeyStateOf, NewKeyContext). Everything else,
// the partition supervisor and key actors, their mailbox and worker pool,
// the watermark, the virtual-key reducer and the commit metadata codec, is
// unexported: it changes without notice. Package jobs, not this one, is
// where job users start.
//
// # How it works
//
// Each assigned partition is a supervisor actor; each virtual-partition key
// a child key actor. Partitions come and go one at a time (Runtime.Assign,
// Runtime.Revoke), so a partition can be drained and committed while the
// others keep running. The watermark decides which offset is committable:
// one past the highest offset below which every record finished.
//
// Key actors run on a fixed pool of Concurrency goroutines (a protoactor
// Dispatcher), so the pool is the concurrency limit. A key actor's Receive
// never waits except to run its handler: the handler's Outcome says what
// follows (Done, Retry after a delay, Hold until released), a retry is a
// timer that sends the actor a message, and a key that waits holds neither a
// goroutine nor a slot. Each supervisor runs on a goroutine of its own, so
// handlers can never keep it from routing records and counting what
// finished.
//
// Supervision: handlers are expected to turn their own panics into outcomes
// (package jobs does, in one place). What protoactor's supervision still
// guards is a fault in a key actor itself, or a raw Handler that panics: the
// key actor's strategy restarts it and it runs its record again after a
// back-off.
//
// It must not know kafka-go: it reads records and commits offsets through the
// small interfaces declared here, which package kafka implements and tests
// implement in memory. It knows nothing of jobs, envelopes or msgpack either:
// its unit of work is a record handler.
package actors
