// Package actors is ordo's concurrency core, built on protoactor-go.
//
// It owns the PartitionSupervisor (one actor per assigned Kafka partition),
// the KeyActor children (one per virtual-partition key), the watermark that
// decides which offset is committable, bounded buffering and the revocation
// drain.
//
// It must not know kafka-go: it reads records and commits offsets through the
// small interfaces declared here, which package kafka implements and tests
// implement in memory. It knows nothing of jobs, envelopes or msgpack either:
// its unit of work is a record handler.
package actors
