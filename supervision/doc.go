// Package supervision holds ordo's failure policies as pure, testable values:
// retry backoff, the restart strategy for key actors, and the decision of when
// a job goes to the dead-letter topic.
//
// It must not perform I/O or know Kafka, actors' internals or envelopes: it
// answers questions ("retry after how long?", "dead-letter now?") and the
// runtime acts on the answers.
package supervision
