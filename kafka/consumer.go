package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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

// Header returns the value of the record's first header named key, nil if
// it has none.
func (r *Record) Header(key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
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

// RebalanceProtocol is how a group moves partitions between its members.
type RebalanceProtocol int

const (
	// Eager: at every rebalance each member hands back every partition,
	// and the leader assigns them all afresh (Kafka's range assignor).
	// Every join, leave or crash pauses the whole group for one round.
	Eager RebalanceProtocol = iota
	// Cooperative: incremental rebalancing (KIP-429) with Kafka's
	// cooperative-sticky assignor. A member keeps every partition it is
	// not asked to give up and goes on running it; only the partitions
	// that move are drained, in a first round, and handed to their new
	// owner in a second. It interoperates with Java consumers using
	// cooperative-sticky. Use RunCooperative.
	Cooperative
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
	// heartbeat, so this bounds how late a member learns of one. (The
	// second round of a cooperative rebalance, which an ordo leader
	// announces, is watched for every 50 ms.)
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
	// Rebalance chooses how the group moves partitions: Eager (the
	// default) or Cooperative. Every member of a group must use the same.
	Rebalance RebalanceProtocol
	// InstanceID makes the member static (Kafka's group.instance.id,
	// KIP-345): a member that restarts with the same InstanceID within
	// SessionTimeout gets its partitions back without a rebalance of the
	// others, and stopping does not leave the group (see Leave). It must be
	// unique among the group's live members and stable across restarts of
	// one: a StatefulSet pod name, or host name plus a slot number. A
	// second live member with the same InstanceID replaces the first, which
	// then stops with ErrMembershipFailed. Default "": a dynamic member.
	InstanceID string
	// Logger receives membership events. Default slog.Default().
	Logger *slog.Logger
	// Security secures every connection (TLS, SASL). Default nil:
	// plaintext.
	Security *Security
}

func (c ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	if err := checkBrokers("kafka.ConsumerConfig", c.Brokers); err != nil {
		return c, err
	}
	switch {
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
	if c.InstanceID != "" {
		if err := checkName(c.InstanceID); err != nil {
			return c, fmt.Errorf("kafka.ConsumerConfig.InstanceID: %w", err)
		}
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
	leave  atomic.Bool // see Leave
	// heartbeatHook, when set (by tests, before Run), is told each
	// heartbeat's outcome: a test proves no rebalance reached a member by
	// the heartbeats it answered, which a sleep cannot.
	heartbeatHook func(error)
}

// NewConsumer validates the configuration. It does not contact the broker.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Consumer{
		cfg: cfg,
		// A transport of its own, not kafka-go's shared default: see Run.
		client: &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: cfg.Security.transport()},
	}, nil
}

// ErrMembershipFailed is returned by Run when the broker refuses this member
// for a reason that retrying cannot fix (an invalid topic, an authorization
// failure, a group protocol no other member shares).
var ErrMembershipFailed = errors.New("kafka: the group refused this member")

func (c *Consumer) newSession(gen generation, instanceID string, stopping *atomic.Bool) *Session {
	s := &Session{id: gen.id, memberID: gen.memberID, instanceID: instanceID, leader: gen.leader, consumer: c, stopping: stopping}
	for topic, parts := range gen.assigned {
		for _, p := range slices.Sorted(slices.Values(parts)) {
			s.claims = append(s.claims, &Claim{session: s, Topic: topic, Partition: int(p), Start: kafkago.FirstOffset})
		}
	}
	c.readStartOffsets(s.claims)
	return s
}

// readStartOffsets sets each claim's Start to the group's committed offset
// and StartMetadata to the metadata committed with it; a partition with no
// commit starts at the log start. A claim whose offset cannot be read would
// start from the wrong place, so a failed read is retried until the
// generation's session would expire, then the claims are given no start:
// Fetch fails, and the runtime's retries ask again.
func (c *Consumer) readStartOffsets(claims []*Claim) {
	req := &kafkago.OffsetFetchRequest{GroupID: c.cfg.Group, Topics: map[string][]int{}}
	for _, cl := range claims {
		req.Topics[cl.Topic] = append(req.Topics[cl.Topic], cl.Partition)
	}
	if len(req.Topics) == 0 {
		return
	}
	var resp *kafkago.OffsetFetchResponse
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err = c.client.OffsetFetch(ctx, req)
		cancel()
		if err == nil {
			err = resp.Error
		}
		if err == nil || attempt == 5 {
			break
		}
		time.Sleep(backoff.Delay(100*time.Millisecond, time.Second, attempt))
	}
	if err != nil {
		c.cfg.Logger.Error("ordo: reading committed offsets failed; the partitions will not be fetched this generation",
			"group", c.cfg.Group, "err", err)
		for _, cl := range claims {
			cl.startErr = fmt.Errorf("committed offset of %s/%d: %w", cl.Topic, cl.Partition, err)
		}
		return
	}
	for _, cl := range claims {
		for _, p := range resp.Topics[cl.Topic] {
			if p.Partition != cl.Partition {
				continue
			}
			if p.Error != nil {
				cl.startErr = fmt.Errorf("committed offset of %s/%d: %w", cl.Topic, cl.Partition, p.Error)
				continue
			}
			if p.CommittedOffset >= 0 {
				cl.Start, cl.StartMetadata = p.CommittedOffset, p.Metadata
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
	id         int32
	memberID   string
	instanceID string
	leader     bool
	consumer   *Consumer
	stopping   *atomic.Bool
	claims     []*Claim
	done       <-chan struct{}

	mu       sync.Mutex
	closed   bool
	lastSent map[topicPartition]int64
	// owned, for a cooperative member's session, which outlives
	// generations, are the partitions it may commit for.
	owned map[topicPartition]bool
	// rejoining, for a cooperative member's session, is open from the
	// moment the member sends JoinGroup until it knows the round's
	// outcome; commits wait for it to close (see beginRound).
	rejoining chan struct{}
}

// beginRound holds the session's commits while a cooperative member joins
// again: once every member has joined, the coordinator refuses the old
// generation (ILLEGAL_GENERATION) and, until SyncGroup is answered, the new
// one (REBALANCE_IN_PROGRESS), and the member cannot tell when that moment
// comes. It waits for a commit in flight, which went while the member had
// not yet joined and so before the generation could end. Java's consumer
// likewise sends no commit while it rejoins.
func (s *Session) beginRound() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejoining = make(chan struct{})
}

// endRound lets commits go again, with gen when the round gave the member
// a new generation (nil when it failed).
func (s *Session) endRound(gen *generation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != nil {
		s.id, s.memberID, s.leader = gen.id, gen.memberID, gen.leader
	}
	if s.rejoining != nil {
		close(s.rejoining)
		s.rejoining = nil
	}
}

// GenerationID is the group generation this session belongs to.
func (s *Session) GenerationID() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// MemberID is this member's id in the group.
func (s *Session) MemberID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memberID
}

// Leader tells whether this member assigned the partitions of this
// generation.
func (s *Session) Leader() bool { return s.leader }

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

func (s *Session) describe() map[string][]int { return describeClaims(s.claims) }

func describeClaims(claims []*Claim) map[string][]int {
	out := map[string][]int{}
	for _, c := range claims {
		out[c.Topic] = append(out[c.Topic], c.Partition)
	}
	return out
}

// Commit commits the offsets in one request, bound to this generation. It
// fails with ErrStaleGeneration once the session is over or the coordinator
// has moved to a newer generation, and it never sends an offset lower than
// one this session already committed for the same partition. A cooperative
// member's commit made while the member rejoins the group waits, up to
// ctx, for the new generation and goes with it.
func (s *Session) Commit(ctx context.Context, offsets ...Offset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.rejoining != nil {
		rejoined := s.rejoining
		s.mu.Unlock()
		select {
		case <-rejoined:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			return fmt.Errorf("commit for generation %d: waiting for the group's rebalance: %w", s.id, ctx.Err())
		}
	}
	if s.closed {
		return fmt.Errorf("commit for generation %d: %w", s.id, ErrStaleGeneration)
	}
	if s.lastSent == nil {
		s.lastSent = make(map[topicPartition]int64)
	}
	req := &kafkago.OffsetCommitRequest{
		GroupID:      s.consumer.cfg.Group,
		GenerationID: int(s.id),
		MemberID:     s.memberID,
		InstanceID:   s.instanceID,
		Topics:       map[string][]kafkago.OffsetCommit{},
	}
	n := 0
	var errs []error
	for _, o := range offsets {
		k := topicPartition{o.Topic, o.Partition}
		if last, ok := s.lastSent[k]; ok && o.Offset < last {
			continue
		}
		if s.owned != nil && !s.owned[k] {
			errs = append(errs, fmt.Errorf("commit %s/%d for generation %d: %w: the partition is no longer this member's",
				o.Topic, o.Partition, s.id, ErrStaleGeneration))
			continue
		}
		req.Topics[o.Topic] = append(req.Topics[o.Topic], kafkago.OffsetCommit{
			Partition: o.Partition, Offset: o.Offset, Metadata: o.Metadata,
		})
		n++
	}
	if n == 0 {
		return errors.Join(errs...)
	}
	resp, err := s.consumer.client.OffsetCommit(ctx, req)
	if err != nil {
		return fmt.Errorf("commit for generation %d: %w", s.id, err)
	}
	for topic, parts := range resp.Topics {
		for _, p := range parts {
			switch {
			case p.Error == nil:
			case errors.Is(p.Error, kafkago.IllegalGeneration), errors.Is(p.Error, kafkago.UnknownMemberId),
				errors.Is(p.Error, kafkago.RebalanceInProgress), errors.Is(p.Error, kafkago.FencedInstanceID):
				errs = append(errs, fmt.Errorf("commit %s/%d for generation %d: %w: %w",
					topic, p.Partition, s.id, ErrStaleGeneration, p.Error))
			default:
				errs = append(errs, fmt.Errorf("commit %s/%d for generation %d: %w", topic, p.Partition, s.id, p.Error))
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
	// FetchMaxWait, when set before the first Fetch, overrides
	// ConsumerConfig.FetchMaxWait for this claim (and its Readers): a
	// partition whose reader acts on time, not on new records, polls
	// sooner than the others.
	FetchMaxWait time.Duration
	// startErr says why Start could not be read; Fetch returns it.
	startErr error
	// revoked is closed when a cooperative member gives the partition
	// up; Fetch then returns ErrRevoked. nil for an eager member, whose
	// claims end with their session.
	revoked chan struct{}

	once      sync.Once
	transport *kafkago.Transport
	client    *kafkago.Client
	next      int64
	// resp, pending and unread are what is left of the last response when
	// the caller took fewer records than it held: handing them out later,
	// rather than fetching them again, keeps a caller that takes few
	// records at a time from reading each response many times over. At
	// most one response per partition. pending is its record batches not
	// decoded yet, in resp's buffer: a waiting record costs its share of
	// the response, not a decoded Record. unread[ui:] is the decoded
	// records of the last batch not handed out yet.
	resp           *fetched
	pending        []byte
	pendingRecords int
	unread         []Record
	ui             int
	decoder        batchDecoder
	// decodeErr is a batch that could not be read, returned once the
	// records before it are handed out.
	decodeErr error
	// end is the offset after the last batch decoded: where the next
	// fetch starts once the response is handed out, past any transaction
	// markers and compacted gaps at its end.
	end int64
	// legacy: the partition holds message sets older than record
	// batches, which only kafka-go's decoder reads.
	legacy bool
	// prefetched is how many records unread and pending hold, read
	// concurrently for stats.
	prefetched atomic.Int64
	// highWatermark is the partition's last stable offset as of the last
	// fetch, plus one, so that its zero value means "not fetched yet";
	// read concurrently for lag.
	highWatermark atomic.Int64
}

// HighWatermark returns the end of what the partition's readers may read
// (one past its last record that is not in an open transaction: Kafka's
// last stable offset, the high watermark when no transaction is open) as
// the last successful Fetch saw it, or -1 before one. With the committed
// offset it gives the partition's lag; a claim reads no further, since
// ordo reads committed records only.
func (c *Claim) HighWatermark() int64 { return c.highWatermark.Load() - 1 }

// stableEnd is a fetch response's last stable offset, or its high
// watermark from a broker that sent none (-1).
func stableEnd(lastStable, highWatermark int64) int64 {
	if lastStable < 0 {
		return highWatermark
	}
	return lastStable
}

// Prefetched returns how many fetched records the claim holds that Fetch
// has not handed out yet: the rest of its last response.
func (c *Claim) Prefetched() int { return int(c.prefetched.Load()) }

// Fetch appends the next records of the partition to dst, at most max of
// them, waiting up to the configured FetchMaxWait for some to arrive (it may
// append none). Calls must not overlap. next is the offset the following
// Fetch will start at, so that a caller that has handled every record before
// next may commit next even when the log has gaps (compaction, transaction
// markers). Each record owns its bytes: dst may be reused once its records
// were copied.
func (c *Claim) Fetch(ctx context.Context, dst []Record, max int) (records []Record, next int64, err error) {
	c.once.Do(c.init)
	if c.ended() {
		return dst, c.next, ErrRevoked
	}
	if c.startErr != nil {
		return dst, c.next, c.startErr
	}
	if max < 1 {
		max = 1
	}
	if c.holding() {
		if dst = c.read(dst, max); len(dst) > 0 || c.holding() {
			return dst, c.next, nil
		}
		if err := c.decodeErr; err != nil {
			c.decodeErr = nil
			return dst, c.next, err
		}
	}
	if c.legacy {
		err = c.fetchLegacy(ctx)
	} else {
		err = c.fetch(ctx)
	}
	if err != nil {
		if errors.Is(err, kafkago.OffsetOutOfRange) {
			// The committed offset was deleted by retention: start again
			// from the log start rather than stall the partition.
			c.session.consumer.cfg.Logger.Warn("ordo: offset out of range; restarting from the log start",
				"topic", c.Topic, "partition", c.Partition, "offset", c.next)
			c.next, c.end = kafkago.FirstOffset, 0
		}
		return dst, c.next, fmt.Errorf("fetch %s/%d at %d: %w", c.Topic, c.Partition, c.next, err)
	}
	dst = c.read(dst, max)
	if err := c.decodeErr; err != nil && len(dst) == 0 {
		c.decodeErr = nil
		return dst, c.next, err
	}
	if c.ended() {
		return dst[:0], c.next, ErrRevoked
	}
	return dst, c.next, nil
}

// fetch reads the partition's next response into pending (see fetch.go).
func (c *Claim) fetch(ctx context.Context) (err error) {
	cfg := c.session.consumer.cfg
	if c.next < 0 {
		if c.next, err = c.resolve(ctx, c.next); err != nil {
			return err
		}
	}
	maxWait := c.maxWait()
	ctx, cancel := context.WithTimeout(ctx, maxWait+30*time.Second)
	defer cancel()
	resp, err := fetchPartition(ctx, c.transport, c.client.Addr, &rawFetch{
		topic: c.Topic, partition: int32(c.Partition), offset: c.next,
		maxBytes: int32(cfg.FetchMaxBytes), maxWait: maxWait,
	})
	if err != nil {
		return err
	}
	c.highWatermark.Store(stableEnd(resp.lastStableOffset, resp.highWatermark) + 1)
	c.decoder.startResponse(resp.aborted)
	c.resp, c.pending, c.end = resp, resp.batches, c.next
	c.pendingRecords = max(0, countRecords(resp.batches))
	return nil
}

func (c *Claim) maxWait() time.Duration {
	return cmp.Or(c.FetchMaxWait, c.session.consumer.cfg.FetchMaxWait)
}

// holding tells whether the last response still has records to hand out.
func (c *Claim) holding() bool { return c.ui < len(c.unread) || len(c.pending) > 0 }

// decodePending decodes pending's next record batches into unread until
// unread holds a record or pending is spent, and tells whether it holds one.
func (c *Claim) decodePending() bool {
	for c.ui == len(c.unread) && len(c.pending) > 0 {
		var count int32
		var err error
		c.unread, c.ui = c.unread[:0], 0
		c.unread, c.end, c.pending, count, err = c.decoder.decode(c.unread, c.Topic, c.Partition, c.end, c.pending)
		c.pendingRecords = max(0, c.pendingRecords-int(count))
		switch {
		case errors.Is(err, errLegacyBatch):
			// Written before Kafka 0.11's record batches: kafka-go
			// reads those, at the cost of its pages, from here on.
			c.session.consumer.cfg.Logger.Info("ordo: the partition holds message sets older than record batches; reading it with kafka-go's decoder",
				"topic", c.Topic, "partition", c.Partition, "offset", c.end)
			c.legacy = true
		case err != nil:
			c.decodeErr = err
		}
	}
	switch {
	case len(c.pending) == 0:
		c.dropPending()
	case c.resp.buf != nil && len(c.pending) < cap(*c.resp.buf)/2 && cap(*c.resp.buf) >= compactFrom:
		// Most of the response was handed out while the rest waits
		// (its keys busy, MaxBuffered full): keep only the rest.
		rest := append([]byte(nil), c.pending...)
		c.resp.release()
		c.resp, c.pending = &fetched{}, rest
	}
	return c.ui < len(c.unread)
}

// compactFrom is the least response buffer decodePending trims to what is
// left of it: below, a copy would cost more than the bytes it frees.
const compactFrom = 64 << 10

// dropPending gives the response's buffer back: its records were copied.
func (c *Claim) dropPending() {
	if c.resp != nil {
		c.resp.release()
	}
	c.resp, c.pending, c.pendingRecords = nil, nil, 0
}

// resolve turns kafka-go's FirstOffset or LastOffset into the offset.
func (c *Claim) resolve(ctx context.Context, which int64) (int64, error) {
	offsets, err := partitionOffsets(ctx, c.client, c.Topic, []int{c.Partition}, which)
	if err != nil {
		return which, err
	}
	offset, ok := offsets[c.Partition]
	if !ok {
		return which, fmt.Errorf("list offsets: no answer for %s/%d", c.Topic, c.Partition)
	}
	return offset, nil
}

// fetchLegacy is fetch through kafka-go's own Fetch and decoder, for
// partitions that hold message sets of the formats before record batches.
func (c *Claim) fetchLegacy(ctx context.Context) error {
	cfg := c.session.consumer.cfg
	resp, err := c.client.Fetch(ctx, &kafkago.FetchRequest{
		Topic:     c.Topic,
		Partition: c.Partition,
		Offset:    c.next,
		MinBytes:  1,
		MaxBytes:  int64(cfg.FetchMaxBytes),
		MaxWait:   c.maxWait(),
		// Message sets older than record batches hold no transactions;
		// read committed keeps the claim from reading past an open one.
		IsolationLevel: kafkago.ReadCommitted,
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return err
	}
	if c.next < 0 {
		c.next = resp.LogStartOffset
	}
	c.highWatermark.Store(stableEnd(resp.LastStableOffset, resp.HighWatermark) + 1)
	c.unread, c.ui = c.unread[:0], 0
	c.decodeErr = c.drain(resp.Records)
	return nil
}

// Revoked is closed when the claim's partition is taken back (Fetch then
// returns ErrRevoked): its session ended or, for a cooperative member, the
// partition alone was revoked. A claim outside any group
// (NewPartitionReader) returns nil: it is never revoked.
func (c *Claim) Revoked() <-chan struct{} {
	if c.revoked != nil {
		return c.revoked
	}
	return c.session.done
}

// ended tells whether the claim's partition was taken back: its session
// ended, or, for a cooperative member, the partition alone was revoked.
func (c *Claim) ended() bool {
	select {
	case <-c.Revoked():
		return true
	default:
		return false
	}
}

// drain copies every record of a fetch response at or past next into
// unread, each into an allocation of its own, and gives kafka-go's pages
// back, so that what waits to be handed out costs its records' bytes. A
// record that cannot be read ends the response there: the records before
// it are handed out, and the next fetch starts at it.
func (c *Claim) drain(rr kafkago.RecordReader) error {
	from := c.next
	for {
		r, err := rr.ReadRecord()
		if err != nil {
			return nil // io.EOF, or a batch cut short by MaxBytes: fetch again from next
		}
		if r.Offset < from {
			closeBytes(r.Key, r.Value)
			continue // a compressed batch may start before the requested offset
		}
		rec, err := copyRecord(c.Topic, c.Partition, r)
		if err != nil {
			drainRecords(rr)
			return fmt.Errorf("read record %s/%d@%d: %w", c.Topic, c.Partition, r.Offset, err)
		}
		c.unread = append(c.unread, rec)
		from = r.Offset + 1
	}
}

// drainRecords gives back the pages of the records of rr left unread.
func drainRecords(rr kafkago.RecordReader) {
	for {
		r, err := rr.ReadRecord()
		if err != nil {
			return
		}
		closeBytes(r.Key, r.Value)
	}
}

// read appends up to max records of the last response to dst, those at or
// past next.
func (c *Claim) read(dst []Record, max int) []Record {
	for taken := 0; taken < max; {
		if c.ui == len(c.unread) && !c.decodePending() {
			break
		}
		r := c.unread[c.ui]
		c.unread[c.ui] = Record{} // the record is the caller's now
		c.ui++
		if r.Offset < c.next {
			continue // SetOffset moved past it
		}
		dst = append(dst, r)
		c.next = r.Offset + 1
		taken++
	}
	if !c.holding() && c.end > c.next {
		c.next = c.end
	}
	c.prefetched.Store(int64(len(c.unread) - c.ui + c.pendingRecords))
	return dst
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

// SetOffset moves the claim's fetch position to offset: the next Fetch starts
// there. Records of the last response at or past offset are still handed
// out without fetching them again; a move backwards drops them.
func (c *Claim) SetOffset(offset int64) {
	c.once.Do(c.init)
	if offset < c.next {
		clear(c.unread)
		c.unread, c.ui = nil, 0
		c.dropPending()
		c.prefetched.Store(0)
	}
	c.next, c.end = offset, 0
}

// Reader returns another reader of the claim's partition, starting at
// start, that ends when the claim does: a caller that tails a partition
// with the claim can look records up at other offsets with it. Close it
// like a claim.
func (c *Claim) Reader(start int64) *Claim {
	return &Claim{session: c.session, Topic: c.Topic, Partition: c.Partition, Start: start, revoked: c.revoked,
		FetchMaxWait: c.FetchMaxWait}
}

// ReaderConfig configures NewPartitionReader.
type ReaderConfig struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// Security secures the connection. Default nil: plaintext.
	Security *Security
	// FetchMaxWait: how long the broker may hold a fetch for new data.
	// Default DefaultFetchMaxWait.
	FetchMaxWait time.Duration
	// Logger: default slog.Default().
	Logger *slog.Logger
}

// NewPartitionReader returns a reader of one partition from offset start,
// outside any group: a Claim that is never revoked and cannot commit. Use
// Fetch and Seek on it, and Close it when done.
func NewPartitionReader(cfg ReaderConfig, topic string, partition int, start int64) (*Claim, error) {
	if err := checkBrokers("kafka.ReaderConfig", cfg.Brokers); err != nil {
		return nil, err
	}
	if err := cfg.Security.Validate(); err != nil {
		return nil, fmt.Errorf("kafka.ReaderConfig.Security: %w", err)
	}
	if cfg.FetchMaxWait <= 0 {
		cfg.FetchMaxWait = DefaultFetchMaxWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Consumer{cfg: ConsumerConfig{Brokers: cfg.Brokers, Security: cfg.Security, FetchMaxWait: cfg.FetchMaxWait,
		FetchMaxBytes: DefaultFetchMaxBytes, Logger: cfg.Logger}}
	// A session whose done channel is nil never ends.
	return &Claim{session: &Session{consumer: c}, Topic: topic, Partition: partition, Start: start}, nil
}
