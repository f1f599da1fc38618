package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/backoff"
)

// Record is one Kafka record as ordo's runtime sees it. It holds no kafka-go
// types, so the layers above never import kafka-go.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// Header is a record header: a {Key, Value} pair. It is kafka-go's own header
// type under ordo's name, so that fetched records reach the runtime, and
// produced ones the client, without their headers being copied.
type Header = kafkago.Header

// Offset is a position to commit: the next offset the group should consume on
// Topic/Partition, and optional metadata stored with it.
type Offset struct {
	Topic     string
	Partition int
	Offset    int64
	Metadata  string
}

var (
	// ErrStaleGeneration is returned by Session.Commit when the session's
	// generation has ended or the broker no longer accepts it: a commit
	// from an old generation must never move an offset (kafka-go #1308).
	ErrStaleGeneration = errors.New("kafka: generation is no longer current")
	// ErrRevoked is returned by Claim.Fetch once its generation has ended:
	// records fetched for an old generation are never handed out
	// (kafka-go #1398).
	ErrRevoked = errors.New("kafka: partition revoked")
)

// The defaults of ConsumerConfig. Package jobs uses the same ones.
const (
	DefaultSessionTimeout         = 10 * time.Second
	DefaultRebalanceTimeout       = 30 * time.Second
	DefaultHeartbeatInterval      = time.Second
	DefaultFetchMaxBytes          = 1 << 20
	DefaultFetchMaxWait           = 250 * time.Millisecond
	DefaultPartitionWatchInterval = 5 * time.Second
)

// ConsumerConfig configures a group member. Zero values take the defaults
// noted on each field.
type ConsumerConfig struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// Group is the consumer group id. Required.
	Group string
	// Topics to consume. Required.
	Topics []string
	// SessionTimeout: how long without heartbeats before the coordinator
	// evicts this member. Default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// RebalanceTimeout: how long the coordinator waits for members to
	// rejoin during a rebalance, so the upper bound of a revocation drain.
	// Default DefaultRebalanceTimeout.
	RebalanceTimeout time.Duration
	// HeartbeatInterval: default DefaultHeartbeatInterval. Rebalances are noticed at the next
	// heartbeat, so this bounds how late a member learns of one.
	HeartbeatInterval time.Duration
	// FetchMaxBytes bounds one fetch response per partition. Default
	// DefaultFetchMaxBytes (1 MiB).
	FetchMaxBytes int
	// FetchMaxWait: how long the broker may hold a fetch for new data.
	// Default DefaultFetchMaxWait.
	FetchMaxWait time.Duration
	// PartitionWatchInterval is how often the member looks for partitions
	// added to its topics; a change rebalances the group, so new
	// partitions are consumed within about this long. Default
	// DefaultPartitionWatchInterval.
	PartitionWatchInterval time.Duration
	// Logger receives membership events. Default slog.Default().
	Logger *slog.Logger
	// Security secures every connection (TLS, SASL). Default nil:
	// plaintext.
	Security *Security
}

func (c ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	switch {
	case len(c.Brokers) == 0:
		return c, errors.New("kafka.ConsumerConfig.Brokers is empty")
	case c.Group == "":
		return c, errors.New("kafka.ConsumerConfig.Group is empty")
	case len(c.Topics) == 0:
		return c, errors.New("kafka.ConsumerConfig.Topics is empty")
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"SessionTimeout", c.SessionTimeout}, {"RebalanceTimeout", c.RebalanceTimeout},
		{"HeartbeatInterval", c.HeartbeatInterval}, {"FetchMaxWait", c.FetchMaxWait},
		{"PartitionWatchInterval", c.PartitionWatchInterval},
	} {
		if f.d < 0 {
			return c, fmt.Errorf("kafka.ConsumerConfig.%s must not be negative (got %v)", f.name, f.d)
		}
	}
	if err := c.Security.Validate(); err != nil {
		return c, fmt.Errorf("kafka.ConsumerConfig.Security: %w", err)
	}
	if c.FetchMaxBytes < 0 {
		return c, fmt.Errorf("kafka.ConsumerConfig.FetchMaxBytes must not be negative (got %d)", c.FetchMaxBytes)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.SessionTimeout, DefaultSessionTimeout)
	def(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.FetchMaxWait, DefaultFetchMaxWait)
	def(&c.PartitionWatchInterval, DefaultPartitionWatchInterval)
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return c, fmt.Errorf("kafka.ConsumerConfig.HeartbeatInterval (%v) must be below SessionTimeout (%v)",
			c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Consumer is one member of a consumer group. It hands each generation to the
// caller as a Session and returns only after the caller has let go of it, so
// a member never rejoins while it still works on partitions it may lose.
type Consumer struct {
	cfg    ConsumerConfig
	client *kafkago.Client
}

// NewConsumer validates the configuration. It does not contact the broker.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Consumer{
		cfg:    cfg,
		client: &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: cfg.Security.roundTripper()},
	}, nil
}

// ErrMembershipFailed is returned by Run when the broker refuses this member
// for a reason that retrying cannot fix (an invalid topic, an authorization
// failure, a group protocol no other member shares).
var ErrMembershipFailed = errors.New("kafka: the group refused this member")

// fatalJoin tells the join errors that no retry can cure.
func fatalJoin(err error) bool {
	for _, e := range []error{kafkago.InvalidTopic, kafkago.TopicAuthorizationFailed, kafkago.GroupAuthorizationFailed,
		kafkago.InconsistentGroupProtocol, kafkago.InvalidGroupId, kafkago.UnsupportedVersion,
		kafkago.FencedInstanceID, kafkago.SASLAuthenticationFailed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Run joins the group and calls fn once for each generation. fn runs while
// the generation lasts; it must return soon after sess.Done() is closed, and
// returning gives the partitions back. Run returns nil when ctx ends, after
// the last fn returned and the member left the group; it returns an error
// wrapping ErrMembershipFailed, having left the group, when the broker
// refuses the member for good. A join that fails otherwise is tried again
// after a growing pause, which the log gives as retry_in.
func (c *Consumer) Run(ctx context.Context, fn func(sess *Session)) error {
	m := &member{Consumer: c, fn: fn}
	for failures := 1; ; failures++ {
		generations := m.generations
		err := m.join(ctx)
		switch {
		case err == nil:
			return nil
		case fatalJoin(err):
			c.cfg.Logger.Error("ordo: the group refused this member; stopping", "group", c.cfg.Group, "err", err)
			return fmt.Errorf("%w: group %q: %w", ErrMembershipFailed, c.cfg.Group, err)
		}
		if m.generations > generations {
			failures = 1 // the member was in the group until this failure
		}
		wait := backoff.Delay(100*time.Millisecond, 5*time.Second, failures)
		c.cfg.Logger.Warn("ordo: joining consumer group failed; retrying",
			"group", c.cfg.Group, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// member is one Run: the state that outlives a kafka-go consumer group, of
// which it makes a new one after each failed join.
type member struct {
	*Consumer
	fn       func(sess *Session)
	stopping atomic.Bool
	// generations counts the generations received.
	generations int
	// A generation that ends within a second of the last, with no
	// partitions before or now, may be kafka-go's answer to a missing
	// topic.
	emptyBefore   bool
	lastStart     time.Time
	missingStreak int
}

// join runs a kafka-go consumer group until ctx ends (it returns nil, having
// left the group) or a join fails (it returns why, the group closed). kafka-go
// would retry the join by itself after a fixed pause, and report the
// outcome only when asked for the next generation: a fresh group per
// attempt keeps the attempts where the log says they are.
func (m *member) join(ctx context.Context) error {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                m.cfg.Group,
		Brokers:           m.cfg.Brokers,
		Topics:            m.cfg.Topics,
		HeartbeatInterval: m.cfg.HeartbeatInterval,
		SessionTimeout:    m.cfg.SessionTimeout,
		RebalanceTimeout:  m.cfg.RebalanceTimeout,
		// Never reached: the group is closed at its first failed join.
		JoinGroupBackoff:       time.Minute,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: m.cfg.PartitionWatchInterval,
		StartOffset:            kafkago.FirstOffset,
		ErrorLogger:            kafkago.LoggerFunc(func(msg string, args ...any) { m.cfg.Logger.Debug(fmt.Sprintf(msg, args...)) }),
		Dialer:                 m.cfg.Security.dialer(),
	})
	if err != nil {
		return fmt.Errorf("kafka: consumer group %q: %w", m.cfg.Group, err)
	}
	closed := make(chan struct{})
	var closeOnce sync.Once
	closeGroup := func(stopping bool) {
		// Close ends the running generation, waits for fn to return,
		// then leaves the group.
		closeOnce.Do(func() {
			if stopping {
				m.stopping.Store(true)
			}
			_ = cg.Close()
			close(closed)
		})
	}
	go func() {
		select {
		case <-ctx.Done():
			closeGroup(true)
		case <-closed:
		}
	}()
	for {
		gen, err := cg.Next(context.Background())
		switch {
		case errors.Is(err, kafkago.ErrGroupClosed):
			<-closed
			return nil
		case errors.Is(err, kafkago.RebalanceInProgress):
			// kafka-go joins again at once, keeping the member id.
			m.cfg.Logger.Debug("ordo: rebalance in progress; joining again", "group", m.cfg.Group)
			continue
		case err != nil:
			closeGroup(false)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		m.generations++
		sess := m.newSession(gen, &m.stopping)
		m.cfg.Logger.Info("ordo: partitions assigned", "group", m.cfg.Group,
			"generation", gen.ID, "member", gen.MemberID, "partitions", sess.describe())
		m.awaitMissingTopics(len(sess.claims) == 0, closed)
		gen.Start(func(genCtx context.Context) {
			sess.done = genCtx.Done()
			defer sess.close()
			m.fn(sess)
		})
	}
}

// awaitMissingTopics pauses before a generation without partitions that
// follows another at once, while a topic of the group does not exist:
// kafka-go's partition watcher ends every generation at once then, and
// without a pause the member would rejoin hundreds of times a second.
func (m *member) awaitMissingTopics(empty bool, closed <-chan struct{}) {
	quick := m.emptyBefore && time.Since(m.lastStart) < time.Second
	defer func() { m.emptyBefore, m.lastStart = empty, time.Now() }()
	if !empty || !quick {
		m.missingStreak = 0
		return
	}
	missing := m.missingTopics()
	if len(missing) == 0 {
		m.missingStreak = 0
		return
	}
	m.missingStreak++
	wait := backoff.Delay(100*time.Millisecond, 5*time.Second, m.missingStreak)
	m.cfg.Logger.Warn("ordo: topics of the group do not exist; waiting for them",
		"group", m.cfg.Group, "topics", missing, "retry_in", wait)
	select {
	case <-closed:
	case <-time.After(wait):
	}
}

// missingTopics returns the topics of the group that the broker does not
// know, or nil when it cannot tell.
func (c *Consumer) missingTopics() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	meta, err := c.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: c.cfg.Topics})
	if err != nil {
		return nil
	}
	var missing []string
	for _, t := range meta.Topics {
		if errors.Is(t.Error, kafkago.UnknownTopicOrPartition) || (t.Error == nil && len(t.Partitions) == 0) {
			missing = append(missing, t.Name)
		}
	}
	return missing
}

func (c *Consumer) newSession(gen *kafkago.Generation, stopping *atomic.Bool) *Session {
	s := &Session{gen: gen, consumer: c, stopping: stopping}
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			s.claims = append(s.claims, &Claim{
				session:   s,
				Topic:     topic,
				Partition: p.ID,
				Start:     p.Offset,
			})
		}
	}
	c.readStartMetadata(s)
	return s
}

// readStartMetadata fills in each claim's StartMetadata. kafka-go's consumer
// group reads the committed offsets but drops their metadata; one more
// request per generation gets it. Failing here costs only re-runs, so it is
// logged, not fatal.
func (c *Consumer) readStartMetadata(s *Session) {
	req := &kafkago.OffsetFetchRequest{GroupID: c.cfg.Group, Topics: map[string][]int{}}
	for _, cl := range s.claims {
		req.Topics[cl.Topic] = append(req.Topics[cl.Topic], cl.Partition)
	}
	if len(req.Topics) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.client.OffsetFetch(ctx, req)
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		c.cfg.Logger.Warn("ordo: reading commit metadata failed; finished records above the committed offset may run again",
			"group", c.cfg.Group, "err", err)
		return
	}
	for _, cl := range s.claims {
		for _, p := range resp.Topics[cl.Topic] {
			if p.Partition == cl.Partition && p.Error == nil && p.CommittedOffset == cl.Start {
				cl.StartMetadata = p.Metadata
			}
		}
	}
}

type topicPartition struct {
	topic     string
	partition int
}

// Session is one generation of group membership: the partitions assigned in
// it and the right to commit offsets for them.
type Session struct {
	gen      *kafkago.Generation
	consumer *Consumer
	stopping *atomic.Bool
	claims   []*Claim
	done     <-chan struct{}

	mu       sync.Mutex
	closed   bool
	lastSent map[topicPartition]int64
}

// GenerationID is the group generation this session belongs to.
func (s *Session) GenerationID() int32 { return s.gen.ID }

// MemberID is this member's id in the group.
func (s *Session) MemberID() string { return s.gen.MemberID }

// Claims are the partitions assigned in this generation.
func (s *Session) Claims() []*Claim { return s.claims }

// Done is closed when the generation ends: a rebalance revokes the
// partitions, or the consumer is stopping (see Stopping).
func (s *Session) Done() <-chan struct{} { return s.done }

// Stopping tells, once Done is closed, whether the generation ended because
// the consumer is shutting down rather than because of a rebalance.
func (s *Session) Stopping() bool { return s.stopping.Load() }

func (s *Session) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *Session) describe() map[string][]int {
	out := map[string][]int{}
	for _, c := range s.claims {
		out[c.Topic] = append(out[c.Topic], c.Partition)
	}
	return out
}

// Commit commits the offsets in one request, bound to this generation. It
// fails with ErrStaleGeneration once the session is over or the coordinator
// has moved to a newer generation, and it never sends an offset lower than
// one this session already committed for the same partition.
func (s *Session) Commit(ctx context.Context, offsets ...Offset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("commit for generation %d: %w", s.gen.ID, ErrStaleGeneration)
	}
	if s.lastSent == nil {
		s.lastSent = make(map[topicPartition]int64)
	}
	req := &kafkago.OffsetCommitRequest{
		GroupID:      s.gen.GroupID,
		GenerationID: int(s.gen.ID),
		MemberID:     s.gen.MemberID,
		Topics:       map[string][]kafkago.OffsetCommit{},
	}
	n := 0
	for _, o := range offsets {
		k := topicPartition{o.Topic, o.Partition}
		if last, ok := s.lastSent[k]; ok && o.Offset < last {
			continue
		}
		req.Topics[o.Topic] = append(req.Topics[o.Topic], kafkago.OffsetCommit{
			Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata,
		})
		n++
	}
	if n == 0 {
		return nil
	}
	resp, err := s.consumer.client.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("commit for generation %d: %w", s.gen.ID, err)
	}
	var errs []error
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			switch {
			case p.Error == nil:
			case errors.Is(p.Error, kafkago.IllegalGeneration), errors.Is(p.Error, kafkago.UnknownMemberId),
				errors.Is(p.Error, kafkago.RebalanceInProgress), errors.Is(p.Error, kafkago.FencedInstanceID):
				errs = append(errs, fmt.Errorf("commit %s/%d for generation %d: %w: %w",
					topic, p.Partition, s.gen.ID, ErrStaleGeneration, p.Error))
			default:
				errs = append(errs, fmt.Errorf("commit %s/%d for generation %d: %w", topic, p.Partition, s.gen.ID, p.Error))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for topic, parts := range req.Topics {
		for _, p := range parts {
			s.lastSent[topicPartition{topic, p.Partition}] = p.Offset
		}
	}
	return nil
}

// Claim is one partition assigned in a generation. Its fetch position starts
// at the group's committed offset (or the log start when there is none) and
// moves only forward; nothing it fetched outlives its generation.
type Claim struct {
	session   *Session
	Topic     string
	Partition int
	// Start is where this generation starts reading: the committed offset,
	// or kafka-go's FirstOffset (-2) when the group has none.
	Start int64
	// StartMetadata is the metadata committed with Start ("" when none, or
	// when it could not be read): the runtime keeps there which records
	// above Start already finished.
	StartMetadata string

	once      sync.Once
	transport *kafkago.Transport
	client    *kafkago.Client
	next      int64
	// unread is what is left of the last response when the caller took
	// fewer records than it held: handing them out later, rather than
	// fetching them again, keeps a caller that takes few records at a time
	// from reading each response many times over, and records are copied
	// out of the response only when they are handed out. At most one
	// response per partition.
	unread kafkago.RecordReader
	// highWatermark is the partition's end offset as of the last fetch,
	// plus one, so that its zero value means "not fetched yet"; read
	// concurrently for lag.
	highWatermark atomic.Int64
}

// HighWatermark returns the partition's end offset (one past its last
// record) as the last successful Fetch saw it, or -1 before one: with the
// committed offset it gives the partition's lag.
func (c *Claim) HighWatermark() int64 { return c.highWatermark.Load() - 1 }

// Fetch appends the next records of the partition to dst, at most max of
// them, waiting up to the configured FetchMaxWait for some to arrive (it may
// append none). Calls must not overlap. next is the offset the following
// Fetch will start at, so that a caller that has handled every record before
// next may commit next even when the log has gaps (compaction, transaction
// markers). Each record owns its bytes: dst may be reused once its records
// were copied.
func (c *Claim) Fetch(ctx context.Context, dst []Record, max int) (records []Record, next int64, err error) {
	c.once.Do(c.init)
	select {
	case <-c.session.done:
		return dst, c.next, ErrRevoked
	default:
	}
	if max < 1 {
		max = 1
	}
	if c.unread != nil {
		if dst, err = c.read(dst, max); err != nil || len(dst) > 0 || c.unread != nil {
			return dst, c.next, err
		}
	}
	cfg := c.session.consumer.cfg
	resp, err := c.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic:     c.Topic,
		Partition: c.Partition,
		Offset:    c.next,
		MinBytes:  1,
		MaxBytes:  int64(cfg.FetchMaxBytes),
		MaxWait:   cfg.FetchMaxWait,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		if errors.Is(err, kafkago.OffsetOutOfRange) {
			// The committed offset was deleted by retention: start again
			// from the log start rather than stall the partition.
			c.session.consumer.cfg.Logger.Warn("ordo: offset out of range; restarting from the log start",
				"topic", c.Topic, "partition", c.Partition, "offset", c.next)
			c.next = kafkago.FirstOffset
		}
		return dst, c.next, fmt.Errorf("fetch %s/%d at %d: %w", c.Topic, c.Partition, c.next, err)
	}
	if c.next < 0 {
		c.next = resp.LogStartOffset
	}
	c.highWatermark.Store(resp.HighWatermark + 1)
	c.unread = resp.Records
	if dst, err = c.read(dst, max); err != nil {
		return dst, c.next, err
	}
	select {
	case <-c.session.done:
		return dst[:0], c.next, ErrRevoked
	default:
	}
	return dst, c.next, nil
}

// read appends up to max records of the unread response to dst; it drops
// the response once it is read to its end.
func (c *Claim) read(dst []Record, max int) ([]Record, error) {
	for n := 0; n < max; {
		r, err := c.unread.ReadRecord()
		if err != nil {
			c.unread = nil // io.EOF, or a batch cut short by MaxBytes: fetch again from next
			return dst, nil
		}
		if r.Offset < c.next {
			closeBytes(r.Key, r.Value)
			continue // a compressed batch may start before the requested offset
		}
		rec, err := copyRecord(c.Topic, c.Partition, r)
		if err != nil {
			c.unread = nil
			return dst, fmt.Errorf("read record %s/%d@%d: %w", c.Topic, c.Partition, r.Offset, err)
		}
		dst = append(dst, rec)
		c.next = r.Offset + 1
		n++
	}
	return dst, nil
}

// Close releases the claim's connections.
func (c *Claim) Close() {
	c.once.Do(func() {}) // waits for an init in progress; none may start after
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

func (c *Claim) init() {
	// A transport of its own gives each partition its own connection: a
	// broker serves one connection's requests in order, so shared
	// long-polling fetches would queue behind each other.
	c.transport = c.session.consumer.cfg.Security.transport()
	c.client = &kafkago.Client{
		Addr:      kafkago.TCP(c.session.consumer.cfg.Brokers...),
		Transport: c.transport,
		Timeout:   30 * time.Second,
	}
	c.next = c.Start
}

// copyRecord copies a fetched record out of kafka-go's pooled pages into one
// allocation of its own for key and value, and gives the pages back. One
// allocation per record, rather than one per response, means a record that
// waits long (a retry, a slow key) keeps only its own bytes alive, never the
// rest of its response. The headers are kafka-go's, already one slice per
// record.
func copyRecord(topic string, partition int, r *kafkago.Record) (Record, error) {
	defer closeBytes(r.Key, r.Value)
	rec := Record{Topic: topic, Partition: partition, Offset: r.Offset, Time: r.Time, Headers: r.Headers}
	keyLen, valueLen := bytesLen(r.Key), bytesLen(r.Value)
	buf := make([]byte, keyLen+valueLen)
	if r.Key != nil {
		rec.Key = buf[:keyLen:keyLen]
		if _, err := io.ReadFull(r.Key, rec.Key); err != nil {
			return rec, fmt.Errorf("key: %w", err)
		}
	}
	if r.Value != nil {
		rec.Value = buf[keyLen:]
		if _, err := io.ReadFull(r.Value, rec.Value); err != nil {
			return rec, fmt.Errorf("value: %w", err)
		}
	}
	return rec, nil
}

func bytesLen(b kafkago.Bytes) int {
	if b == nil {
		return 0
	}
	return b.Len()
}

func closeBytes(bs ...kafkago.Bytes) {
	for _, b := range bs {
		if b != nil {
			_ = b.Close()
		}
	}
}
