// Package kafka is the only package in ordo that imports kafka-go.
//
// It owns group membership on the classic protocol's calls (eager with the
// range assignor, or cooperative with the cooperative-sticky assignor;
// static membership), per-partition fetching from explicit offsets, offset
// commits bound to a generation, the producer and small admin calls. The
// in-process broker for tests, examples and the demo is kafka/kafkaembed,
// which production code does not link.
//
// It must not know about actors, jobs or envelopes: it hands out records and
// takes offsets to commit.
package kafka
