package kafka

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/ordo-go/ordo/internal/backoff"
)

// A kafka-go Writer looks a topic up in its transport's cached metadata,
// which the transport re-reads only every MetadataTTL (6 s), and an unknown
// topic does not make it re-read sooner: a write to a topic created a
// moment ago fails at once with Unknown Topic Or Partition. So a write that
// kafka-go refused for an unknown topic (before sending any of it) waits
// here: the topic is looked up afresh, on a connection of its own, until the
// brokers list it; then the writers' transport drops its cached metadata,
// and the write is tried again.

// unknownTopicError is a write kafka-go refused, before sending any of it,
// because its metadata does not list topic.
type unknownTopicError struct {
	topic string
	err   error
	// waited and why say, once the producer gave up waiting for the
	// topic, for how long and what ended the wait.
	waited time.Duration
	why    string
}

func (e *unknownTopicError) Error() string {
	s := fmt.Sprintf("produce to %q: %v: %v", e.topic, ErrUnknownTopic, e.err)
	if e.why != "" {
		s += fmt.Sprintf(" (waited %v for it to appear, until %s)", e.waited.Round(time.Millisecond), e.why)
	}
	return s
}

func (e *unknownTopicError) Unwrap() []error { return []error{ErrUnknownTopic, e.err} }

// The backoff between looks at an unknown topic, and how long a look's
// answer serves the calls waiting for the same topic.
const (
	topicLookInitial = 100 * time.Millisecond
	topicLookLimit   = time.Second
	topicLookFresh   = 50 * time.Millisecond
	topicLookTimeout = 5 * time.Second
)

// awaitTopic waits until the brokers list the topic of ut and the writers'
// metadata was dropped, so that a write can be tried again. tries is how
// often the write failed for it before, and backs the looks off. It gives up
// when ctx ends or UnknownTopicWait after start, with ut saying so.
func (p *Producer) awaitTopic(ctx context.Context, ut *unknownTopicError, start time.Time, tries int) error {
	deadline := start.Add(p.unknownTopicWait)
	for ; ; tries++ {
		if tries > 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return ut.gaveUp(start, "UnknownTopicWait")
			}
			t := time.NewTimer(min(backoff.Delay(topicLookInitial, topicLookLimit, tries), left))
			select {
			case <-ctx.Done():
				t.Stop()
				return ut.gaveUp(start, ctx.Err().Error())
			case <-p.closing:
				t.Stop()
				return ut.gaveUp(start, "the producer was closed")
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return ut.gaveUp(start, ctx.Err().Error())
		}
		if p.probes.exists(ctx, p, ut.topic) {
			p.dropMetadata(ctx, ut.topic)
			return nil
		}
	}
}

// gaveUp is ut once the producer stopped waiting for its topic.
func (ut *unknownTopicError) gaveUp(start time.Time, why string) error {
	e := *ut
	e.waited, e.why = time.Since(start), why
	return &e
}

// dropMetadata makes the writers' transport read the cluster's metadata
// afresh before its next request, unless what it holds lists topic already
// (another call dropped it). Requests in flight finish on their
// connections.
func (p *Producer) dropMetadata(ctx context.Context, topic string) {
	if listed(ctx, p.transport, p.addr, topic) {
		return
	}
	p.transport.CloseIdleConnections()
}

// topicProbes coalesces the fresh looks at unknown topics: one at a time per
// producer, and a look's answer serves the calls that ask within
// topicLookFresh of it, so that many calls waiting for one topic do not
// open a connection each.
type topicProbes struct {
	sem  chan struct{}
	mu   sync.Mutex
	last map[string]topicProbe
}

type topicProbe struct {
	at     time.Time
	exists bool
}

// exists tells whether the brokers list topic now; false also when they
// could not be asked.
func (t *topicProbes) exists(ctx context.Context, p *Producer, topic string) bool {
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-t.sem }()
	t.mu.Lock()
	last, ok := t.last[topic]
	t.mu.Unlock()
	if ok && time.Since(last.at) < topicLookFresh {
		return last.exists
	}
	look, cancel := context.WithTimeout(ctx, topicLookTimeout)
	defer cancel()
	// A transport of its own, which knows nothing yet, reads the
	// metadata of this topic alone.
	fresh := p.security.transport()
	fresh.MetadataTopics = []string{topic}
	defer fresh.CloseIdleConnections()
	exists := listed(look, fresh, p.addr, topic)
	t.mu.Lock()
	now := time.Now()
	// Topic names come from callers: forget the stale answers rather than
	// keep one per name ever asked about.
	for name, pr := range t.last {
		if now.Sub(pr.at) >= topicLookFresh {
			delete(t.last, name)
		}
	}
	t.last[topic] = topicProbe{at: now, exists: exists}
	t.mu.Unlock()
	return exists
}

// listed tells whether the metadata rt holds (a kafka-go Transport answers
// from its cache) lists topic with partitions.
func listed(ctx context.Context, rt kafkago.RoundTripper, addr net.Addr, topic string) bool {
	n, _ := partitionCount(ctx, rt, addr, topic)
	return n > 0
}

// partitionCount is how many partitions the metadata rt holds lists for
// topic: 0 and no error for a topic it does not list, an error when the
// metadata could not be read.
func partitionCount(ctx context.Context, rt kafkago.RoundTripper, addr net.Addr, topic string) (int, error) {
	r, err := rt.RoundTrip(ctx, addr, &metadataAPI.Request{TopicNames: []string{topic}})
	if err != nil {
		return 0, err
	}
	for _, t := range r.(*metadataAPI.Response).Topics {
		if t.Name == topic && t.ErrorCode == 0 {
			return len(t.Partitions), nil
		}
	}
	return 0, nil
}

// Partitions returns how many partitions topic has in the producer's
// metadata: the count its partitioner hashes a key over, so a caller that
// must know where a key's message goes asks it here. For a topic the
// metadata does not list, it waits as a produce call does (until ctx ends
// or UnknownTopicWait passes), then fails with ErrUnknownTopic.
func (p *Producer) Partitions(ctx context.Context, topic string) (int, error) {
	if !p.enter() {
		return 0, fmt.Errorf("look up %q: %w", topic, ErrProducerClosed)
	}
	defer p.calls.Done()
	start := time.Now()
	for tries := 0; ; tries++ {
		n, err := partitionCount(ctx, p.transport, p.addr, topic)
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("look up %q: %w", topic, err)
		}
		ut := &unknownTopicError{topic: topic, err: kafkago.UnknownTopicOrPartition}
		if err := p.awaitTopic(ctx, ut, start, tries); err != nil {
			return 0, err
		}
	}
}
