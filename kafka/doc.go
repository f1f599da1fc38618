// Package kafka is the only package in ordo that imports kafka-go.
//
// It owns group membership (generations, assignment and revocation),
// per-partition fetching from explicit offsets, pause and resume, offset
// commits bound to a generation, the producer, small admin calls, and the
// embedded in-process broker used by tests, examples and the demo.
//
// It must not know about actors, jobs or envelopes: it hands out records and
// takes offsets to commit.
package kafka
