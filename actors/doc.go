// Package actors is ordo's concurrency core, built on protoactor-go.
//
// It owns the PartitionSupervisor (one actor per assigned Kafka partition),
// the KeyActor children (one per virtual-partition key), the watermark that
// decides which offset is committable, bounded buffering, idle-key
// passivation and the revocation drain. Partitions come and go one at a time
// (Runtime.Assign, Runtime.Revoke), so a partition can be drained and
// committed while the others keep running.
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
