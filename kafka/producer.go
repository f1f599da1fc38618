package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Message is a record to produce.
type Message struct {
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
}

// ProducerConfig configures a Producer. Zero values take the defaults noted.
type ProducerConfig struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// BatchSize is the most messages sent in one produce request per
	// partition. Default 1000.
	BatchSize int
	// BatchTimeout bounds how long a partial batch waits for more
	// messages. Default 5 ms.
	BatchTimeout time.Duration
}

// Producer writes messages, partitioned by key the way the Java client does
// (murmur2), and waits for every in-sync replica to acknowledge them.
type Producer struct {
	w *kafkago.Writer
}

// NewProducer validates cfg; it does not contact the broker.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: ProducerConfig.Brokers is empty")
	}
	if cfg.BatchSize < 0 || cfg.BatchTimeout < 0 {
		return nil, fmt.Errorf("kafka: ProducerConfig.BatchSize (%d) and BatchTimeout (%v) must not be negative",
			cfg.BatchSize, cfg.BatchTimeout)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1000
	}
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = 5 * time.Millisecond
	}
	return &Producer{w: &kafkago.Writer{
		Addr:         kafkago.TCP(cfg.Brokers...),
		Balancer:     &kafkago.Murmur2Balancer{},
		BatchSize:    cfg.BatchSize,
		BatchTimeout: cfg.BatchTimeout,
		RequiredAcks: kafkago.RequireAll,
		MaxAttempts:  5,
	}}, nil
}

// Produce writes the messages and returns once all were acknowledged, or
// with an error saying which failed.
func (p *Producer) Produce(ctx context.Context, msgs ...Message) error {
	out := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		out[i] = kafkago.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
		if len(m.Headers) > 0 {
			out[i].Headers = make([]kafkago.Header, len(m.Headers))
			for j, h := range m.Headers {
				out[i].Headers[j] = kafkago.Header{Key: h.Key, Value: h.Value}
			}
		}
	}
	if err := p.w.WriteMessages(ctx, out...); err != nil {
		return fmt.Errorf("produce %d messages: %w", len(msgs), err)
	}
	return nil
}

// Close flushes and releases the producer.
func (p *Producer) Close() error { return p.w.Close() }
