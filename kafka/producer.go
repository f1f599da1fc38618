package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Message is a record to produce.
type Message struct {
	Topic string
	// Key is written with the record and, unless PartitionKey is set,
	// chooses its partition the way the Java client does (murmur2), so
	// Go and JVM producers put a key on the same partition. A nil Key and
	// PartitionKey spread records over the partitions.
	Key []byte
	// PartitionKey, when not nil, chooses the partition instead of Key
	// (Murmur2Partition of it) and is not written: a record that must
	// share a partition, and so an order, with others without carrying
	// their key. Like librdkafka's and WaterDrop's partition key.
	PartitionKey []byte
	Value        []byte
	Headers      []Header
}

// Delivery says where a message was written, so callers can log or look up
// the record they produced.
type Delivery struct {
	Topic     string
	Partition int
	Offset    int64
}

// ErrProducerClosed is what produce calls get once Close has begun: no
// message is accepted that Close would not wait for.
var ErrProducerClosed = errors.New("kafka: producer is closed")

// ProduceError reports a produce call in which some messages failed, so that
// a caller can retry exactly those. errors.Is and errors.As see each distinct
// cause.
type ProduceError struct {
	// Errs has one entry per message of the call, in order: nil for the
	// messages that were written.
	Errs []error
}

// Error counts the failures and names each distinct cause once: a batch
// that failed for one reason would otherwise repeat it per message.
func (e *ProduceError) Error() string {
	causes := e.Unwrap()
	msgs := make([]string, len(causes))
	for i, c := range causes {
		msgs[i] = c.Error()
	}
	return fmt.Sprintf("%d of %d messages failed: %s", e.failed(), len(e.Errs), strings.Join(msgs, "; "))
}

// Unwrap returns the distinct causes, for errors.Is and errors.As.
func (e *ProduceError) Unwrap() []error {
	var out []error
	seen := map[string]bool{}
	for _, err := range e.Errs {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return out
}

func (e *ProduceError) failed() int {
	n := 0
	for _, err := range e.Errs {
		if err != nil {
			n++
		}
	}
	return n
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
	// WriteTimeout bounds one produce request, and so how long a broker
	// that does not answer holds a batch before it is retried or failed.
	// Default 10 s.
	WriteTimeout time.Duration
	// Logger receives kafka-go's retry and connection errors, at debug
	// level: the errors that matter reach the callers. Default
	// slog.Default().
	Logger *slog.Logger
	// Security secures every connection (TLS, SASL). Default nil:
	// plaintext.
	Security *Security
}

// Producer writes messages, partitioned by key the way the Java client does
// (murmur2), and waits for every in-sync replica to acknowledge them. It
// sends synchronously (Produce, ProduceSync) and asynchronously
// (ProduceAsync); both may be used at once from many goroutines.
type Producer struct {
	sync      *kafkago.Writer
	async     *kafkago.Writer
	transport *kafkago.Transport

	mu     sync.RWMutex
	closed bool
	// calls counts produce calls inside a writer's WriteMessages, plus
	// async failures not yet reported: Close waits for them before it
	// closes the writers, because a kafka-go Writer closed while a
	// WriteMessages call is still between its checks may never finish
	// closing.
	calls sync.WaitGroup
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
	if err := cfg.Security.Validate(); err != nil {
		return nil, err
	}
	if cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("kafka: ProducerConfig.WriteTimeout (%v) must not be negative", cfg.WriteTimeout)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1000
	}
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = 5 * time.Millisecond
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Producer{transport: cfg.Security.transport()}
	bal := &balancer{}
	logger := cfg.Logger
	logf := kafkago.LoggerFunc(func(msg string, args ...any) {
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			logger.Debug("ordo: kafka producer: " + fmt.Sprintf(msg, args...))
		}
	})
	writer := func(async bool) *kafkago.Writer {
		return &kafkago.Writer{
			Addr:         kafkago.TCP(cfg.Brokers...),
			Balancer:     bal,
			BatchSize:    cfg.BatchSize,
			BatchTimeout: cfg.BatchTimeout,
			WriteTimeout: cfg.WriteTimeout,
			RequiredAcks: kafkago.RequireAll,
			MaxAttempts:  5,
			Async:        async,
			Completion:   complete,
			Transport:    p.transport,
			ErrorLogger:  logf,
		}
	}
	p.sync, p.async = writer(false), writer(true)
	return p, nil
}

// pending travels with each message through kafka-go as its WriterData:
// the balancer reads the partition key from it, and the writer's Completion
// reports the outcome to it.
type pending struct {
	partitionKey []byte
	// done is the async callback; nil for sync calls, which read delivery
	// and err once WriteMessages has returned.
	done     func(Delivery, error)
	reported atomic.Bool
	delivery Delivery
	err      error
}

// report records the outcome once: whichever of Completion and an early
// failure comes first is the only one a caller ever sees.
func (p *pending) report(d Delivery, err error) {
	if !p.reported.CompareAndSwap(false, true) {
		return
	}
	if err != nil {
		d.Partition, d.Offset = -1, -1
	}
	if p.done != nil {
		p.done(d, err)
		return
	}
	p.delivery, p.err = d, err
}

// complete is the writers' Completion: kafka-go calls it once per batch, sent
// or failed, before WriteMessages returns (sync) or Close returns (async).
func complete(msgs []kafkago.Message, err error) {
	if err != nil && len(msgs) > 0 {
		err = fmt.Errorf("produce to %q: %w", msgs[0].Topic, err)
	}
	for i := range msgs {
		if p, ok := msgs[i].WriterData.(*pending); ok {
			p.report(Delivery{Topic: msgs[i].Topic, Partition: msgs[i].Partition, Offset: msgs[i].Offset}, err)
		}
	}
}

// balancer partitions by the partition key, else by the key, with the Java
// client's murmur2, and spreads messages that have neither.
type balancer struct {
	next atomic.Uint32
}

func (b *balancer) Balance(msg kafkago.Message, partitions ...int) int {
	key := msg.Key
	if p, ok := msg.WriterData.(*pending); ok && p.partitionKey != nil {
		key = p.partitionKey
	}
	if key == nil {
		return partitions[(b.next.Add(1)-1)%uint32(len(partitions))]
	}
	// kafka-go passes every partition of the topic, as the Java client
	// hashes over all partitions, not only the available ones.
	return partitions[Murmur2Partition(key, len(partitions))]
}

func (p *Producer) enter() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.calls.Add(1)
	return true
}

func toKafkaGo(m *Message, pend *pending) kafkago.Message {
	return kafkago.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers, WriterData: pend}
}

// Produce writes the messages and returns once all were acknowledged, or
// with an error saying which failed (a *ProduceError when some were
// written). It is ProduceSync for callers that need not know where the
// messages went.
func (p *Producer) Produce(ctx context.Context, msgs ...Message) error {
	_, err := p.ProduceSync(ctx, msgs...)
	return err
}

// ProduceSync writes the messages in one call, batched per partition, and
// returns once every one was acknowledged or failed. The deliveries say
// where each message went, in order. When some failed the error is a
// *ProduceError naming them, and their deliveries have Partition and Offset
// -1. When ctx ends first, ProduceSync returns its error and no deliveries:
// the messages may still be written.
func (p *Producer) ProduceSync(ctx context.Context, msgs ...Message) ([]Delivery, error) {
	if !p.enter() {
		return nil, fmt.Errorf("produce %d messages: %w", len(msgs), ErrProducerClosed)
	}
	defer p.calls.Done()
	if len(msgs) == 0 {
		return nil, nil
	}
	pend := make([]pending, len(msgs))
	out := make([]kafkago.Message, len(msgs))
	for i := range msgs {
		pend[i].partitionKey = msgs[i].PartitionKey
		out[i] = toKafkaGo(&msgs[i], &pend[i])
	}
	err := p.sync.WriteMessages(ctx, out...)
	var werr kafkago.WriteErrors
	if err != nil && !errors.As(err, &werr) {
		// Nothing was queued (closed writer, metadata lookup, a message
		// too large), or ctx ended while batches were in flight and
		// their completions may still be running.
		return nil, fmt.Errorf("produce %d messages: %w", len(msgs), err)
	}
	// kafka-go ran Completion for every batch before returning nil or
	// WriteErrors, so each pending holds its outcome.
	deliveries := make([]Delivery, len(msgs))
	var perr *ProduceError
	for i := range pend {
		d, derr := pend[i].delivery, pend[i].err
		if !pend[i].reported.Load() {
			d, derr = Delivery{Topic: msgs[i].Topic, Partition: -1, Offset: -1}, errors.New("kafka-go reported no outcome")
		}
		deliveries[i] = d
		if derr != nil {
			if perr == nil {
				perr = &ProduceError{Errs: make([]error, len(msgs))}
			}
			perr.Errs[i] = derr
		}
	}
	if perr != nil {
		return deliveries, fmt.Errorf("produce %d messages: %w", len(msgs), perr)
	}
	return deliveries, nil
}

// ProduceAsync queues msg and returns without waiting for the broker; done
// gets the outcome exactly once, nil or the error, never dropped: a message
// the producer could not queue (closed producer, unknown topic, unreachable
// broker) fails through done as well. ctx bounds only the metadata lookup
// that picks the partition, the first time a topic is seen; delivery is
// bounded by WriteTimeout and five attempts. done runs on a producer
// goroutine, never on the caller's, so it may take locks the caller holds;
// it should return quickly, since it holds up the batches behind its own.
// Close waits for every done of a message accepted before it. done must not
// be nil.
func (p *Producer) ProduceAsync(ctx context.Context, msg Message, done func(Delivery, error)) {
	if done == nil {
		panic("kafka: ProduceAsync with a nil done func")
	}
	pend := &pending{partitionKey: msg.PartitionKey, done: done}
	if !p.enter() {
		go pend.report(Delivery{Topic: msg.Topic}, fmt.Errorf("produce to %q: %w", msg.Topic, ErrProducerClosed))
		return
	}
	if err := p.async.WriteMessages(ctx, toKafkaGo(&msg, pend)); err != nil {
		// In async mode kafka-go fails a call only before queuing any of
		// it, and then never calls Completion for it.
		go func() {
			defer p.calls.Done()
			pend.report(Delivery{Topic: msg.Topic}, fmt.Errorf("produce to %q: %w", msg.Topic, err))
		}()
		return
	}
	p.calls.Done()
}

// Close stops accepting messages, flushes both writers and returns once
// every accepted message was acknowledged or failed and its done ran. Later
// calls fail with ErrProducerClosed. Calling Close again does nothing.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.calls.Wait()
	err := errors.Join(p.sync.Close(), p.async.Close())
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close producer: %w", err)
	}
	return nil
}
