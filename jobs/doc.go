// Package jobs is what ordo's users touch: job types and their workers, the
// registry, the msgpack envelope, the Client that enqueues jobs and the Server
// that runs them in order per key.
//
// It wires the layers below it together (kafka, actors, supervision). Nothing
// below it may import it.
package jobs
