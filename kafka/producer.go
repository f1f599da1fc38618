package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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

// ErrUnknownTopic is wrapped by the error of a message to a topic the
// brokers do not know: one that was never created, or not yet, after the
// producer waited for it (see ProducerConfig.UnknownTopicWait). The error
// names the topic.
var ErrUnknownTopic = errors.New("topic does not exist")

// ErrMessageTooLarge is wrapped by the error of a message larger than
// ProducerConfig.MaxMessageBytes, which is not sent, or one the broker
// refused as larger than the topic's max.message.bytes. The error gives the
// message's size and the limit. It fails that message only.
var ErrMessageTooLarge = errors.New("message too large")

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

// IsTooLarge reports whether err says a message was refused as too large:
// by the producer before sending (ErrMessageTooLarge: more than
// ProducerConfig.MaxMessageBytes with its key and headers), or by the
// broker (MESSAGE_TOO_LARGE: more than the topic's max.message.bytes;
// RECORD_LIST_TOO_LARGE).
func IsTooLarge(err error) bool {
	return errors.Is(err, ErrMessageTooLarge) || errors.Is(err, kafkago.MessageSizeTooLarge) || errors.Is(err, kafkago.RecordListTooLarge)
}

// IsRefused reports whether err is a refusal that sending the same message
// again cannot overcome: too large (IsTooLarge), an invalid record,
// timestamp or topic, a policy violation, or a topic or cluster the client
// is not authorized for. Other produce errors (a leader moving, a timeout,
// a topic not created yet) may pass when tried again.
func IsRefused(err error) bool {
	if IsTooLarge(err) {
		return true
	}
	for _, code := range refusals {
		if errors.Is(err, code) {
			return true
		}
	}
	return false
}

var refusals = []kafkago.Error{
	kafkago.InvalidRecord, kafkago.InvalidTimestamp,
	kafkago.InvalidTopic, kafkago.InvalidRequiredAcks, kafkago.UnsupportedForMessageFormat, kafkago.PolicyViolation,
	kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed,
}

// ProducerConfig configures a Producer. Zero values take the defaults noted.
type ProducerConfig struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// BatchSize is the most messages sent in one produce request per
	// partition. Default 1000.
	BatchSize int
	// BatchTimeout bounds how long a partial batch of ProduceAsync
	// messages waits for more. Default 5 ms. Synchronous calls wait for
	// no timer: a call made while none is being written is sent at once,
	// and the calls made while one is being written are sent together
	// as soon as it is done.
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
	// UnknownTopicWait bounds how long a produce call waits for a topic
	// the brokers do not know, when its ctx has no earlier end: a topic
	// created a moment ago becomes writable once the producer's metadata
	// shows it, which it re-reads while waiting. The call then fails with
	// ErrUnknownTopic. Default 60 s, as the Java producer's max.block.ms.
	UnknownTopicWait time.Duration
	// MaxMessageBytes is the largest message the producer sends, counted
	// as kafka-go counts it (key, value, headers and a few bytes of
	// framing); a larger one fails alone with ErrMessageTooLarge, and the
	// others of its call are written. Keep it at or below the brokers'
	// message.max.bytes and the topics' max.message.bytes. Default
	// 1048576, as kafka-go's and about Kafka's default.
	MaxMessageBytes int
}

// The defaults of ProducerConfig.UnknownTopicWait and MaxMessageBytes.
const (
	DefaultUnknownTopicWait = 60 * time.Second
	DefaultMaxMessageBytes  = 1 << 20
)

// Producer writes messages, partitioned by key the way the Java client does
// (murmur2), and waits for every in-sync replica to acknowledge them. It
// sends synchronously (Produce, ProduceSync) and asynchronously
// (ProduceAsync); both may be used at once from many goroutines.
type Producer struct {
	// small takes the synchronous writes of up to small.BatchSize
	// messages, bulk the larger ones; one write is in flight at a time,
	// so that the two never hold messages of one partition at once.
	small     *kafkago.Writer
	bulk      *kafkago.Writer
	async     *kafkago.Writer
	transport *kafkago.Transport
	// addr and security are the writers', for the fresh metadata reads of
	// a topic the writers do not know.
	addr     net.Addr
	security *Security
	// unknownTopicWait and maxMessageBytes are the config's, defaulted.
	unknownTopicWait time.Duration
	maxMessageBytes  int
	// probes coalesces fresh metadata reads of unknown topics.
	probes topicProbes
	// waitMax bounds one combined write of synchronous calls: longer
	// than kafka-go's attempts at it take, so that it ends only when a
	// broker stops answering altogether.
	waitMax time.Duration

	// syncMu guards writing and queued: the synchronous calls made while
	// a write is in flight wait in queued and go out together next.
	syncMu  sync.Mutex
	writing bool
	queued  []*syncCall

	mu     sync.RWMutex
	closed bool
	// closing is closed when Close begins: calls waiting for an unknown
	// topic stop waiting, rather than hold Close up.
	closing chan struct{}
	// calls counts produce calls inside a writer's WriteMessages, plus
	// async failures not yet reported: Close waits for them before it
	// closes the writers, because a kafka-go Writer closed while a
	// WriteMessages call is still between its checks may never finish
	// closing.
	calls sync.WaitGroup
}

// NewProducer validates cfg; it does not contact the broker.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if err := checkBrokers("kafka.ProducerConfig", cfg.Brokers); err != nil {
		return nil, err
	}
	if cfg.BatchSize < 0 || cfg.BatchTimeout < 0 {
		return nil, fmt.Errorf("kafka.ProducerConfig.BatchSize (%d) and BatchTimeout (%v) must not be negative",
			cfg.BatchSize, cfg.BatchTimeout)
	}
	if err := cfg.Security.Validate(); err != nil {
		return nil, fmt.Errorf("kafka.ProducerConfig.Security: %w", err)
	}
	if cfg.WriteTimeout < 0 {
		return nil, fmt.Errorf("kafka.ProducerConfig.WriteTimeout (%v) must not be negative", cfg.WriteTimeout)
	}
	if cfg.UnknownTopicWait < 0 {
		return nil, fmt.Errorf("kafka.ProducerConfig.UnknownTopicWait (%v) must not be negative", cfg.UnknownTopicWait)
	}
	if cfg.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("kafka.ProducerConfig.MaxMessageBytes (%d) must not be negative", cfg.MaxMessageBytes)
	}
	if cfg.UnknownTopicWait == 0 {
		cfg.UnknownTopicWait = DefaultUnknownTopicWait
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
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
	p := &Producer{transport: cfg.Security.transport(), addr: kafkago.TCP(cfg.Brokers...), security: cfg.Security,
		unknownTopicWait: cfg.UnknownTopicWait, maxMessageBytes: cfg.MaxMessageBytes,
		probes:  topicProbes{sem: make(chan struct{}, 1), last: map[string]topicProbe{}},
		closing: make(chan struct{}),
		waitMax: maxAttempts*cfg.WriteTimeout + 10*time.Second}
	bal := &balancer{}
	logger := cfg.Logger
	logf := kafkago.LoggerFunc(func(msg string, args ...any) {
		if logger.Enabled(context.Background(), slog.LevelDebug) {
			logger.Debug("ordo: kafka producer: " + fmt.Sprintf(msg, args...))
		}
	})
	writer := func(async bool, batchTimeout time.Duration) *kafkago.Writer {
		return &kafkago.Writer{
			Addr:         p.addr,
			Balancer:     bal,
			BatchSize:    cfg.BatchSize,
			BatchBytes:   int64(cfg.MaxMessageBytes),
			BatchTimeout: batchTimeout,
			WriteTimeout: cfg.WriteTimeout,
			RequiredAcks: kafkago.RequireAll,
			MaxAttempts:  maxAttempts,
			Async:        async,
			Completion:   complete,
			Transport:    p.transport,
			ErrorLogger:  logf,
		}
	}
	// The synchronous writers get each write whole, in one
	// WriteMessages call: its batches are complete when handed over and
	// must not wait for more (kafka-go reads a zero timeout as 1 s).
	// kafka-go gives every batch room for BatchSize messages up front,
	// 150 KB at the default, so small writes, a lone Enqueue above all,
	// go to a writer whose batches hold no more than they do.
	p.async = writer(true, cfg.BatchTimeout)
	p.bulk = writer(false, time.Nanosecond)
	p.small = writer(false, time.Nanosecond)
	p.small.BatchSize = min(smallWrite, cfg.BatchSize)
	return p, nil
}

// maxAttempts is how often kafka-go tries a batch before failing it.
const maxAttempts = 5

// smallWrite is the most messages of a synchronous write that goes to the
// writer of small batches: as many as 64 concurrent calls of one message
// bring, at 10 KB a batch.
const smallWrite = 64

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
	// balanced is set when kafka-go chose the message's partition, on
	// the goroutine calling WriteMessages: once every message of a call
	// is balanced, kafka-go has queued them all and will report each.
	balanced bool
	// outstanding counts down the sync messages of a write not yet
	// reported, for a write whose caller stopped waiting.
	outstanding *outstanding
}

// outstanding is closed once every message of a write has been reported.
type outstanding struct {
	left atomic.Int64
	done chan struct{}
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
	if o := p.outstanding; o != nil && o.left.Add(-1) == 0 {
		close(o.done)
	}
}

// complete is the writers' Completion: kafka-go calls it once per batch, sent
// or failed, before WriteMessages returns (sync) or Close returns (async).
func complete(msgs []kafkago.Message, err error) {
	switch {
	case err == nil || len(msgs) == 0:
	case errors.Is(err, kafkago.UnknownTopicOrPartition):
		err = fmt.Errorf("produce to %q: %w: %w", msgs[0].Topic, ErrUnknownTopic, err)
	case errors.Is(err, kafkago.MessageSizeTooLarge) && len(msgs) == 1:
		m := Message{Key: msgs[0].Key, Value: msgs[0].Value, Headers: msgs[0].Headers}
		err = fmt.Errorf("produce to %q: %d bytes, refused by the broker as over the topic's max.message.bytes: %w: %w",
			msgs[0].Topic, messageBytes(&m), ErrMessageTooLarge, err)
	case errors.Is(err, kafkago.MessageSizeTooLarge):
		// The broker refused the batch whole. Writing its messages again
		// one by one could put them after later messages of their
		// partition, which kafka-go wrote meanwhile: a key's order.
		err = fmt.Errorf("produce to %q: a batch of %d messages refused by the broker as over the topic's max.message.bytes: %w: %w",
			msgs[0].Topic, len(msgs), ErrMessageTooLarge, err)
	default:
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
	if p, ok := msg.WriterData.(*pending); ok {
		p.balanced = true
		if p.partitionKey != nil {
			key = p.partitionKey
		}
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
//
// A call made while no other is being written is sent at once, without
// waiting for a batch to fill, so a lone call costs one round trip. Calls
// made while one is being written wait for it and then go out together,
// one request per partition: concurrent callers share round trips the way
// a batch timeout would make them, without the timeout.
//
// A message larger than MaxMessageBytes fails alone, with
// ErrMessageTooLarge, and is not sent. A call to a topic the brokers do not
// know (yet) is tried again, with the producer's metadata re-read, until
// the topic appears or ctx ends or UnknownTopicWait passes; it then fails
// with ErrUnknownTopic, naming the topic.
func (p *Producer) ProduceSync(ctx context.Context, msgs ...Message) ([]Delivery, error) {
	if !p.enter() {
		return nil, fmt.Errorf("produce %d messages: %w", len(msgs), ErrProducerClosed)
	}
	defer p.calls.Done()
	if len(msgs) == 0 {
		return nil, nil
	}
	if tooLarge := p.oversized(msgs); tooLarge != nil {
		return p.produceFitting(ctx, msgs, tooLarge)
	}
	return p.produceWaiting(ctx, msgs)
}

// produceFitting writes the messages that are not too large, and fails
// those that are, each alone.
func (p *Producer) produceFitting(ctx context.Context, msgs []Message, tooLarge []error) ([]Delivery, error) {
	fit := make([]Message, 0, len(msgs))
	for i := range msgs {
		if tooLarge[i] == nil {
			fit = append(fit, msgs[i])
		}
	}
	var fitDs []Delivery
	var fitErr error
	if len(fit) > 0 {
		fitDs, fitErr = p.produceWaiting(ctx, fit)
	}
	var fitPerr *ProduceError
	errors.As(fitErr, &fitPerr)
	perr := &ProduceError{Errs: tooLarge}
	deliveries := make([]Delivery, len(msgs))
	j := 0
	for i := range msgs {
		if tooLarge[i] != nil {
			deliveries[i] = Delivery{Topic: msgs[i].Topic, Partition: -1, Offset: -1}
			continue
		}
		switch {
		case fitErr == nil:
			deliveries[i] = fitDs[j]
		case fitPerr != nil:
			deliveries[i], perr.Errs[i] = fitDs[j], fitPerr.Errs[j]
		default:
			// The whole write failed (or ctx ended before its outcome).
			deliveries[i], perr.Errs[i] = Delivery{Topic: msgs[i].Topic, Partition: -1, Offset: -1}, fitErr
		}
		j++
	}
	return deliveries, perr
}

// oversized returns, for the messages larger than MaxMessageBytes, their
// errors by index; nil when all fit.
func (p *Producer) oversized(msgs []Message) []error {
	var errs []error
	for i := range msgs {
		if err := p.checkSize(&msgs[i]); err != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			errs[i] = err
		}
	}
	return errs
}

// checkSize refuses a message larger than MaxMessageBytes. kafka-go would
// refuse the whole call it is in, before sending any of it.
func (p *Producer) checkSize(m *Message) error {
	if n := messageBytes(m); n > p.maxMessageBytes {
		return fmt.Errorf("%d bytes, over the limit of %d (MaxMessageBytes / the broker's message.max.bytes): %w",
			n, p.maxMessageBytes, ErrMessageTooLarge)
	}
	return nil
}

// messageBytes is a message's size as kafka-go counts it against the
// writer's BatchBytes (its Message.totalSize).
func messageBytes(m *Message) int {
	n := 22 + len(m.Key) + len(m.Value) + varintLen(len(m.Headers))
	for _, h := range m.Headers {
		n += varintLen(len(h.Key)) + len(h.Key) + varintLen(len(h.Value)) + len(h.Value)
	}
	return n
}

// varintLen is the length of n as a zig-zag varint.
func varintLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}

// produceWaiting is produceOnce, tried again while kafka-go refuses the
// call for a topic its metadata does not list: such a call was not sent,
// so trying again cannot write a message twice.
func (p *Producer) produceWaiting(ctx context.Context, msgs []Message) ([]Delivery, error) {
	start := time.Now()
	for tries := 0; ; tries++ {
		ds, err := p.produceOnce(ctx, msgs)
		var ut *unknownTopicError
		var perr *ProduceError
		if !errors.As(err, &ut) || errors.As(err, &perr) {
			return ds, err
		}
		if err := p.awaitTopic(ctx, ut, start, tries); err != nil {
			return nil, err // it names the topic
		}
	}
}

// produceOnce is one try of ProduceSync.
func (p *Producer) produceOnce(ctx context.Context, msgs []Message) ([]Delivery, error) {
	c := &syncCall{ctx: ctx, msgs: msgs, pend: make([]pending, len(msgs)), done: make(chan struct{})}
	p.syncMu.Lock()
	if p.writing {
		p.queued = append(p.queued, c)
		p.syncMu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			// The queued call is skipped if it has not gone out yet.
			return nil, fmt.Errorf("produce %d messages: %w", len(msgs), ctx.Err())
		}
	} else {
		p.writing = true
		p.syncMu.Unlock()
		// Nothing else is in flight: this call goes out alone, on the
		// caller's goroutine and under its context.
		var left <-chan struct{}
		left, c.err = p.write(ctx, []*syncCall{c})
		if left == nil {
			p.nextWrite()
		} else {
			// ctx ended with the messages in flight: the next write
			// waits for them, or it could overtake them.
			p.calls.Add(1)
			go func() {
				defer p.calls.Done()
				<-left
				p.nextWrite()
			}()
		}
	}
	return c.result()
}

// syncCall is one ProduceSync call on its way to the broker.
type syncCall struct {
	ctx  context.Context
	msgs []Message
	pend []pending
	// err is the failure of the whole call, when kafka-go did not take
	// its messages (or its context ended while they were in flight); the
	// per-message outcomes are in pend otherwise.
	err error
	// done is closed once err and pend hold the outcome, for calls that
	// waited in the queue.
	done chan struct{}
}

// write sends the calls' messages in one WriteMessages call. It returns a
// nil error once kafka-go has reported every message through Completion
// (into the calls' pend), else the error. When ctx ended after kafka-go
// took the messages, left is closed once it has reported them all; it is
// nil otherwise.
func (p *Producer) write(ctx context.Context, calls []*syncCall) (left <-chan struct{}, err error) {
	n := 0
	for _, c := range calls {
		n += len(c.msgs)
	}
	o := &outstanding{done: make(chan struct{})}
	o.left.Store(int64(n))
	out := make([]kafkago.Message, 0, n)
	for _, c := range calls {
		for i := range c.msgs {
			c.pend[i].partitionKey = c.msgs[i].PartitionKey
			c.pend[i].balanced = false
			c.pend[i].outstanding = o
			out = append(out, toKafkaGo(&c.msgs[i], &c.pend[i]))
		}
	}
	w := p.bulk
	if n <= p.small.BatchSize {
		w = p.small
	}
	err = w.WriteMessages(ctx, out...)
	var werr kafkago.WriteErrors
	if err == nil || errors.As(err, &werr) {
		// kafka-go ran Completion for every batch before returning nil
		// or WriteErrors, so each pending holds its outcome.
		return nil, nil
	}
	// Nothing was queued (closed writer, metadata lookup, a message too
	// large), or ctx ended while batches were in flight and their
	// completions may still be running.
	for _, c := range calls {
		for i := range c.pend {
			if !c.pend[i].balanced {
				// kafka-go balances the messages in order and stops at
				// the first whose topic it cannot look up.
				if errors.Is(err, kafkago.UnknownTopicOrPartition) {
					err = &unknownTopicError{topic: c.msgs[i].Topic, err: err}
				}
				return nil, err
			}
		}
	}
	return o.done, err
}

// nextWrite is called by the goroutine that finished a write: it hands the
// calls queued meanwhile to a goroutine of their own, so that the caller
// returns now, or marks the producer idle.
func (p *Producer) nextWrite() {
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	if len(p.queued) == 0 {
		p.writing = false
		return
	}
	// Close waits for the queued calls' messages, as it does for calls
	// being written.
	p.calls.Add(1)
	go p.writeQueued()
}

// writeQueued writes the queued calls together, then whatever queued up
// while it did, until nothing is queued.
func (p *Producer) writeQueued() {
	defer p.calls.Done()
	for {
		p.syncMu.Lock()
		calls := p.queued
		p.queued = nil
		if len(calls) == 0 {
			p.writing = false
			p.syncMu.Unlock()
			return
		}
		p.syncMu.Unlock()
		// Calls whose context has ended were answered already; they are
		// not sent.
		live := make([]*syncCall, 0, len(calls))
		for _, c := range calls {
			if c.ctx.Err() == nil {
				live = append(live, c)
			}
		}
		if len(live) > 0 {
			p.writeTogether(live)
		}
		for _, c := range calls {
			close(c.done)
		}
	}
}

// writeTogether writes calls made by different callers in one WriteMessages
// call, under a context of its own: none of the callers' contexts may cut
// the others' write short, and a caller whose context ends stops waiting
// without stopping the write. When kafka-go takes none of the messages (an
// unknown topic or a message too large in one call would fail them all),
// each call is written on its own, so that it gets its own outcome.
func (p *Producer) writeTogether(calls []*syncCall) {
	ctx, cancel := context.WithTimeout(context.Background(), p.waitMax)
	defer cancel()
	left, err := p.write(ctx, calls)
	if err == nil {
		return
	}
	if len(calls) == 1 || left != nil {
		for _, c := range calls {
			c.err = err
		}
		if left != nil {
			<-left
		}
		return
	}
	for _, c := range calls {
		if left, c.err = p.write(ctx, []*syncCall{c}); left != nil {
			<-left
		}
	}
}

// result turns the call's outcome into ProduceSync's.
func (c *syncCall) result() ([]Delivery, error) {
	var ut *unknownTopicError
	switch {
	case errors.As(c.err, &ut):
		return nil, c.err // it names the topic
	case c.err != nil:
		return nil, fmt.Errorf("produce %d messages: %w", len(c.msgs), c.err)
	}
	deliveries := make([]Delivery, len(c.msgs))
	var perr *ProduceError
	for i := range c.pend {
		d, derr := c.pend[i].delivery, c.pend[i].err
		if !c.pend[i].reported.Load() {
			d, derr = Delivery{Topic: c.msgs[i].Topic, Partition: -1, Offset: -1}, errors.New("kafka-go reported no outcome")
		}
		deliveries[i] = d
		if derr != nil {
			if perr == nil {
				perr = &ProduceError{Errs: make([]error, len(c.msgs))}
			}
			perr.Errs[i] = derr
		}
	}
	if perr != nil {
		// Not wrapped: its message is read when printed, so a caller
		// may still make its entries more precise.
		return deliveries, perr
	}
	return deliveries, nil
}

// ProduceAsync queues msg and returns without waiting for the broker; done
// gets the outcome exactly once, nil or the error, never dropped: a message
// the producer could not queue (closed producer, unknown topic, a message
// over MaxMessageBytes, unreachable broker) fails through done as well. ctx
// bounds only the metadata lookup that picks the partition, the first time
// a topic is seen; for a topic the producer's metadata does not list, that
// is a wait, on the caller's goroutine, until the brokers list it, ctx ends
// or UnknownTopicWait passes (as the Java producer's send blocks up to
// max.block.ms). Delivery is bounded by WriteTimeout and five attempts.
// done runs on a producer goroutine, never on the caller's, so it may take
// locks the caller holds; it should return quickly, since it holds up the
// batches behind its own. Close waits for every done of a message accepted
// before it. done must not be nil.
func (p *Producer) ProduceAsync(ctx context.Context, msg Message, done func(Delivery, error)) {
	if done == nil {
		panic("kafka: ProduceAsync with a nil done func")
	}
	pend := &pending{partitionKey: msg.PartitionKey, done: done}
	if !p.enter() {
		go pend.report(Delivery{Topic: msg.Topic}, fmt.Errorf("produce to %q: %w", msg.Topic, ErrProducerClosed))
		return
	}
	fail := func(err error) {
		go func() {
			defer p.calls.Done()
			pend.report(Delivery{Topic: msg.Topic}, err)
		}()
	}
	if err := p.checkSize(&msg); err != nil {
		fail(fmt.Errorf("produce to %q: %w", msg.Topic, err))
		return
	}
	start := time.Now()
	for tries := 0; ; tries++ {
		err := p.async.WriteMessages(ctx, toKafkaGo(&msg, pend))
		if err == nil {
			p.calls.Done()
			return
		}
		// In async mode kafka-go fails a call only before queuing any of
		// it, and then never calls Completion for it: it may be tried
		// again.
		if !errors.Is(err, kafkago.UnknownTopicOrPartition) {
			fail(fmt.Errorf("produce to %q: %w", msg.Topic, err))
			return
		}
		if err := p.awaitTopic(ctx, &unknownTopicError{topic: msg.Topic, err: err}, start, tries); err != nil {
			fail(err)
			return
		}
	}
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
	close(p.closing)
	p.mu.Unlock()
	p.calls.Wait()
	err := errors.Join(p.small.Close(), p.bulk.Close(), p.async.Close())
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close producer: %w", err)
	}
	return nil
}
