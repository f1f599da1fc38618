package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ordo-go/ordo/internal/envelope"
	"github.com/ordo-go/ordo/internal/testhook"
	"github.com/ordo-go/ordo/kafka"
)

var (
	// ErrInvalidEnqueue is wrapped by every error that refuses a job before
	// anything is sent (nil args, an empty kind, no topic, args that do not
	// encode, a bad option): retrying the same call cannot succeed.
	ErrInvalidEnqueue = errors.New("jobs: invalid enqueue")
	// ErrClientClosed is what enqueue calls get once Close has begun.
	ErrClientClosed = errors.New("jobs: client is closed")
)

// ClientConfig configures a Client. Mistakes fail NewClient with an error
// naming the setting.
type ClientConfig struct {
	// Brokers are the Kafka bootstrap addresses, each host:port ("[::1]:9092"
	// for IPv6); a port is required. Required.
	Brokers []string
	// Security secures the connections to Kafka (TLS, SASL). Default nil:
	// plaintext.
	Security *Security
	// Topic receives jobs unless a call passes WithTopic. It may be empty
	// only if every call does.
	Topic string
	// Logger receives the producer's retries and connection errors, at
	// debug level: every failure also reaches the caller. Default
	// slog.Default().
	Logger *slog.Logger
	// Propagator, when set, writes the trace context of each enqueue call's
	// ctx into the job's headers (e.g. propagation.TraceContext{} for W3C
	// traceparent), for Config.Propagator to pick up in Work. Default:
	// none.
	Propagator propagation.TextMapPropagator
	// Middleware wraps every enqueue call in the Enqueue phase of each, the
	// first outermost (see Middleware). Register a middleware that also
	// has a Work phase in Config.Middleware too. Default: none.
	Middleware []Middleware
	// UnknownTopicWait bounds how long an enqueue (or Cancel) waits for a
	// topic the brokers do not list, when its ctx has no earlier deadline:
	// a topic created a moment ago takes a moment to be seen. It then
	// fails with ErrUnknownTopic, naming the topic. Default 60 s, as the
	// Java producer's max.block.ms.
	UnknownTopicWait time.Duration
	// MaxMessageBytes is the largest job record the client sends (its
	// envelope, key and headers); a larger job fails alone with
	// ErrMessageTooLarge, and the other jobs of an EnqueueMany are written.
	// Keep it within the brokers' message.max.bytes and the topics'
	// max.message.bytes (about 1 MB by default). Default 1048576.
	MaxMessageBytes int
}

// Enqueuer is what code that enqueues jobs needs of a Client. Take it rather
// than *Client, and tests can pass a capturing one (jobstest.Client).
//
//	func PlaceOrder(ctx context.Context, jobs jobs.Enqueuer, o Order) error {
//		_, err := jobs.Enqueue(ctx, SendReceiptArgs{OrderID: o.ID})
//		return err
//	}
type Enqueuer interface {
	Enqueue(ctx context.Context, args JobArgs, opts ...EnqueueOption) (JobInfo, error)
	EnqueueMany(ctx context.Context, params []EnqueueParams) ([]JobInfo, error)
	EnqueueAsync(ctx context.Context, args JobArgs, done func(JobInfo, error), opts ...EnqueueOption)
}

var _ Enqueuer = (*Client)(nil)

// Client enqueues jobs: each job is one Kafka message whose value is its
// envelope and whose headers carry its kind and id. Jobs are acknowledged by
// every in-sync replica before they count as enqueued. A Client is safe for
// concurrent use and meant to live as long as the process; Close it to flush
// async enqueues.
//
//	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: "jobs"})
//	if err != nil { ... }
//	defer client.Close()
//	info, err := client.Enqueue(ctx, ChargeArgs{Account: "acct-1", Cents: 500})
type Client struct {
	topic      string
	producer   *kafka.Producer
	propagator propagation.TextMapPropagator
	middleware []Middleware
	brokers    []string
	security   *Security
	logger     *slog.Logger
	// schedules knows the partition counts of schedules topics.
	schedules *schedulePartitions

	mu     sync.RWMutex
	closed bool
	// calls counts enqueue calls in progress and async failures not yet
	// reported, so Close neither closes the producer under a call nor
	// returns before a done ran.
	calls sync.WaitGroup
}

// NewClient validates cfg; it does not contact Kafka, so a client can be
// built before the brokers are reachable.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: cfg.Brokers, Logger: cfg.Logger, Security: cfg.Security,
		UnknownTopicWait: cfg.UnknownTopicWait, MaxMessageBytes: cfg.MaxMessageBytes})
	if err != nil {
		return nil, fmt.Errorf("%w: jobs.ClientConfig: %w", ErrInvalidConfig, err)
	}
	return &Client{topic: cfg.Topic, producer: p, propagator: cfg.Propagator, middleware: slices.Clone(cfg.Middleware),
		brokers: cfg.Brokers, security: cfg.Security, logger: cfg.Logger, schedules: newSchedulePartitions(p)}, nil
}

func (c ClientConfig) validate() error {
	checks := []check{
		{"Brokers", brokersError(c.Brokers)},
		{"Security", c.Security.Validate()},
		{"Middleware", middlewareError(c.Middleware)},
		{"UnknownTopicWait", within(c.UnknownTopicWait, time.Millisecond, time.Hour)},
		{"MaxMessageBytes", within(c.MaxMessageBytes, 1, 1<<30)},
	}
	if c.Topic != "" {
		checks = append(checks, check{"Topic", kafka.CheckTopicName(c.Topic)})
	}
	return firstFailed("jobs.ClientConfig", checks)
}

// JobInfo describes an enqueued job, so a caller can log it or find its
// record.
type JobInfo struct {
	// ID is the job's unique id (26 characters, sortable by enqueue time);
	// workers see it as Job.ID.
	ID   string
	Kind string
	// Topic is where the job was sent.
	Topic string
	// Key is the record's key; empty when the job has none.
	Key string
	// PartitionKey chose the record's partition without being its key;
	// empty when the job has none.
	PartitionKey string
	// Partition and Offset locate the job's record; -1 until it was
	// written.
	Partition int
	Offset    int64
	// EnqueuedAt is when the job was enqueued, in UTC; workers see it as
	// Job.EnqueuedAt.
	EnqueuedAt time.Time
	// RunAt is when a job enqueued with WithRunAt or WithDelay is due, in
	// UTC; zero for a job enqueued to run now. Until it is dispatched, such
	// a job waits in the schedules topic (Topic + DefaultScheduleSuffix),
	// where Partition and Offset locate its record.
	RunAt time.Time
}

// EnqueueOption changes how one job is enqueued.
type EnqueueOption func(*enqueueOptions)

type enqueueOptions struct {
	topic           string
	topicSet        bool
	key             string
	keySet          bool
	partitionKey    string
	partitionKeySet bool
	headers         map[string]string
	metadata        map[string]string
	// runAt, when set, is when the job should run (WithRunAt); delay is
	// WithDelay's, resolved against the enqueue time.
	runAt    time.Time
	runAtSet bool
	delay    time.Duration
	delaySet bool
	// id and ordoHeaders are set by ordo itself (periodic jobs): a job id
	// to use rather than a new one, and headers of ordo's own.
	id          string
	ordoHeaders []kafka.Header
}

// collectOptions applies opts, skipping nil ones, to fresh options.
func collectOptions(opts []EnqueueOption) enqueueOptions {
	var o enqueueOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// withJobID gives the job this id rather than a new one.
func withJobID(id string) EnqueueOption {
	return func(o *enqueueOptions) { o.id = id }
}

// withHeader adds a header of ordo's own, which WithHeaders refuses.
func withHeader(name, value string) EnqueueOption {
	return func(o *enqueueOptions) {
		o.ordoHeaders = append(o.ordoHeaders, kafka.Header{Key: name, Value: []byte(value)})
	}
}

// WithTopic sends the job to topic instead of ClientConfig.Topic, e.g. to
// keep slow job types on a topic of their own. An empty or invalid name
// fails the enqueue; it never falls back to ClientConfig.Topic.
func WithTopic(topic string) EnqueueOption {
	return func(o *enqueueOptions) { o.topic, o.topicSet = topic, true }
}

// WithKey makes key the record's key, overriding the args' Partitioning: the
// job runs in order with every other job of that key. With WithPartitionKey
// too, the record carries key but the partition key picks the partition.
//
//	client.Enqueue(ctx, args, jobs.WithKey("user-42"))
func WithKey(key string) EnqueueOption {
	return func(o *enqueueOptions) { o.key, o.keySet = key, true }
}

// WithPartitionKey picks the job's partition from partitionKey (murmur2, as
// the Java client does) without giving the record a key, overriding the
// args' Partitioning. The value also travels in the HeaderPartitionKey
// header, so a consumer can derive a virtual partition from it.
func WithPartitionKey(partitionKey string) EnqueueOption {
	return func(o *enqueueOptions) { o.partitionKey, o.partitionKeySet = partitionKey, true }
}

// WithHeaders adds record headers, e.g. for tracing or routing by other
// consumers; several calls merge, later values winning. ordo's own header
// names (HeaderKind, HeaderJobID, HeaderPartitionKey) are refused, so a job
// cannot lie about its kind.
func WithHeaders(headers map[string]string) EnqueueOption {
	return func(o *enqueueOptions) {
		if o.headers == nil {
			o.headers = make(map[string]string, len(headers))
		}
		maps.Copy(o.headers, headers)
	}
}

// WithMetadata attaches metadata to the job's envelope, which its worker
// sees as Job.Metadata; several calls merge, later values winning. Unlike
// headers, metadata stays with the job when it is retried or
// dead-lettered.
func WithMetadata(metadata map[string]string) EnqueueOption {
	return func(o *enqueueOptions) {
		if o.metadata == nil {
			o.metadata = make(map[string]string, len(metadata))
		}
		maps.Copy(o.metadata, metadata)
	}
}

// EnqueueParams is one job of an EnqueueMany call.
type EnqueueParams struct {
	Args JobArgs
	Opts []EnqueueOption
}

// Enqueue sends one job and returns once every in-sync replica has it. Where
// it goes: the options, else the args' Partitioning (if they implement
// PartitionedArgs), else any partition. An error does not prove the job was
// not written: when ctx ends first, or an acknowledgement is lost, it may
// have been, so a retried Enqueue may run a job twice. Once the job was
// built, the JobInfo names it even on error, with Partition -1. A topic the
// brokers do not list yet is waited for, up to ctx's deadline or
// ClientConfig.UnknownTopicWait; then the error wraps ErrUnknownTopic and
// names the topic, and nothing was written.
//
//	info, err := client.Enqueue(ctx, ChargeArgs{Account: "acct-1", Cents: 500})
func (c *Client) Enqueue(ctx context.Context, args JobArgs, opts ...EnqueueOption) (JobInfo, error) {
	if !c.enter() {
		return JobInfo{}, ErrClientClosed
	}
	defer c.calls.Done()
	d, err := draft(c.topic, args, opts, time.Now().UTC(), c.schedules.lookup(ctx))
	if err != nil {
		return JobInfo{}, enqueueError(err, "")
	}
	info := d.info
	ds, err := produceJobs(ctx, c.middleware, c.propagator, c.producer, []jobDraft{d})
	if err != nil {
		// ProduceSync's own error names the one job's failure; one that
		// a middleware wrapped stays whole, for errors.Is.
		var perr *kafka.ProduceError
		if errors.As(err, &perr) && len(perr.Errs) == 1 && err == error(perr) {
			err = perr.Errs[0]
		}
		return info, fmt.Errorf("jobs: enqueue %s job %s: %w", info.Kind, info.ID, err)
	}
	info.Partition, info.Offset = ds[0].Partition, ds[0].Offset
	return info, nil
}

// EnqueueMany sends the jobs in one produce call, batched per partition, and
// returns once every one was acknowledged or failed; jobs of one key keep
// their order in params. If any params are invalid, nothing is sent. If some
// jobs fail, the error wraps an *EnqueueManyError whose Errs say which (by
// index, as in params), and the infos of those have Partition -1. A job
// larger than ClientConfig.MaxMessageBytes fails alone (ErrMessageTooLarge,
// its entry naming its index, kind and size); the others are written.
func (c *Client) EnqueueMany(ctx context.Context, params []EnqueueParams) ([]JobInfo, error) {
	if !c.enter() {
		return nil, ErrClientClosed
	}
	defer c.calls.Done()
	if len(params) == 0 {
		return nil, nil
	}
	now := time.Now().UTC()
	drafts := make([]jobDraft, len(params))
	infos := make([]JobInfo, len(params))
	for i, p := range params {
		var err error
		if drafts[i], err = draft(c.topic, p.Args, p.Opts, now, c.schedules.lookup(ctx)); err != nil {
			return nil, enqueueError(err, fmt.Sprintf("params[%d]: ", i))
		}
		infos[i] = drafts[i].info
	}
	ds, err := produceJobs(ctx, c.middleware, c.propagator, c.producer, drafts)
	for i := range ds {
		infos[i].Partition, infos[i].Offset = ds[i].Partition, ds[i].Offset
	}
	if err != nil {
		nameOversized(err, infos)
		return infos, fmt.Errorf("jobs: enqueue %d jobs: %w", len(params), err)
	}
	return infos, nil
}

// nameOversized makes the errors of jobs too large to send name the job: the
// size is the job's own, unlike a cause that failed many jobs alike.
func nameOversized(err error, infos []JobInfo) {
	var perr *EnqueueManyError
	if !errors.As(err, &perr) || len(perr.Errs) != len(infos) {
		return
	}
	for i, e := range perr.Errs {
		if errors.Is(e, ErrMessageTooLarge) {
			perr.Errs[i] = fmt.Errorf("job %d (kind %q): %w", i, infos[i].Kind, e)
		}
	}
}

// EnqueueAsync sends one job without waiting; done gets the outcome exactly
// once, also when the job is invalid or the client is closed: no failure is
// dropped. done runs on a goroutine of the client, never the caller's, and
// should return quickly, since jobs behind it wait for it. ctx bounds only
// looking up a topic's partitions, the first time the topic is used: for a
// topic the brokers do not list yet, EnqueueAsync waits for it before it
// returns, up to ctx's deadline or ClientConfig.UnknownTopicWait, as the
// Java producer's send does. Close waits for every done. done must not be
// nil.
//
//	client.EnqueueAsync(ctx, args, func(info jobs.JobInfo, err error) {
//		if err != nil {
//			log.Printf("job %s not enqueued: %v", info.ID, err)
//		}
//	})
func (c *Client) EnqueueAsync(ctx context.Context, args JobArgs, done func(JobInfo, error), opts ...EnqueueOption) {
	if done == nil {
		panic("jobs: EnqueueAsync with a nil done func")
	}
	if !c.enter() {
		go done(JobInfo{}, ErrClientClosed)
		return
	}
	if len(c.middleware) > 0 {
		c.enqueueAsyncThrough(ctx, args, done, opts)
		return
	}
	msg, info, err := prepare(c.topic, args, opts, time.Now().UTC(), c.schedules.lookup(ctx))
	if err != nil {
		c.failAsync(done, JobInfo{}, enqueueError(err, ""))
		return
	}
	defer c.calls.Done()
	inject(ctx, c.propagator, &msg)
	c.producer.ProduceAsync(ctx, msg, deliver(info, done))
}

// deliver returns the producer's callback for an EnqueueAsync job: it
// passes the job's outcome to done.
func deliver(info JobInfo, done func(JobInfo, error)) func(kafka.Delivery, error) {
	return func(d kafka.Delivery, err error) {
		if err != nil {
			done(info, fmt.Errorf("jobs: enqueue %s job %s: %w", info.Kind, info.ID, err))
			return
		}
		info.Partition, info.Offset = d.Partition, d.Offset
		done(info, nil)
	}
}

// failAsync reports an EnqueueAsync call that failed before its job reached
// the producer, on a goroutine of its own, and ends the call.
func (c *Client) failAsync(done func(JobInfo, error), info JobInfo, err error) {
	go func() {
		defer c.calls.Done()
		done(info, err)
	}()
}

// Close stops accepting jobs, waits until every job already accepted was
// acknowledged or failed and its done ran, and releases the connections.
// Calling it again does nothing.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.calls.Wait()
	if err := c.producer.Close(); err != nil {
		return fmt.Errorf("jobs: close client: %w", err)
	}
	return nil
}

func (c *Client) enter() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	c.calls.Add(1)
	return true
}

func init() {
	testhook.Prepare = func(topic string, args any, opts any) (kafka.Message, any, error) {
		a, _ := args.(JobArgs)
		o, _ := opts.([]EnqueueOption)
		msg, info, err := prepare(topic, a, o, time.Now().UTC(), nil)
		if err != nil {
			return msg, info, fmt.Errorf("%w: %w", ErrInvalidEnqueue, err)
		}
		return msg, info, nil
	}
}

// prepare builds a job's record: the job itself, or, for a job to run
// later, its schedule record (see schedule.go). partitions tells the
// partition count of a schedules topic; nil (jobstest) takes one. Its errors
// say what is wrong with the call; enqueueError wraps them.
func prepare(defaultTopic string, args JobArgs, opts []EnqueueOption, now time.Time, partitions func(topic string) (int, error)) (kafka.Message, JobInfo, error) {
	d, err := draft(defaultTopic, args, opts, now, partitions)
	if err != nil {
		return kafka.Message{}, JobInfo{}, err
	}
	msg, err := d.record()
	if err != nil {
		return kafka.Message{}, JobInfo{}, err
	}
	return msg, d.info, nil
}

// jobDraft is a job before its record is encoded: the envelope's args and
// the record's headers are what Enqueue middleware may still change.
type jobDraft struct {
	env  envelope.Envelope
	msg  kafka.Message // without its Value
	info JobInfo
}

// draft checks the call and builds the job, as prepare does, up to its
// record.
func draft(defaultTopic string, args JobArgs, opts []EnqueueOption, now time.Time, partitions func(topic string) (int, error)) (jobDraft, error) {
	var none jobDraft
	if isNil(args) {
		return none, fmt.Errorf("args are nil (%T)", args)
	}
	kind := args.Kind()
	if kind == "" {
		return none, fmt.Errorf("%T.Kind() returned an empty kind", args)
	}
	o := collectOptions(opts)
	topic := o.topic
	if o.topicSet {
		if err := kafka.CheckTopicName(topic); err != nil {
			return none, fmt.Errorf("%s job: WithTopic: %w", kind, err)
		}
	} else {
		topic = defaultTopic
	}
	if topic == "" {
		return none, fmt.Errorf("%s job has no topic: set ClientConfig.Topic or pass WithTopic", kind)
	}
	key, partitionKey, err := partitioning(args, &o)
	if err != nil {
		return none, fmt.Errorf("%s job: %w", kind, err)
	}
	for name := range o.headers {
		if reservedHeader(name) {
			return none, fmt.Errorf("%s job: WithHeaders: header %q is set by ordo", kind, name)
		}
	}
	runAt, scheduled, err := o.when(now)
	if err != nil {
		return none, fmt.Errorf("%s job: %w", kind, err)
	}
	rawArgs, err := msgpack.Marshal(args)
	if err != nil {
		return none, fmt.Errorf("encode args of %s job (%T): %w", kind, args, err)
	}
	id := o.id
	if id == "" {
		id = envelope.NewID(now)
	}
	if scheduled {
		if id, err = scheduleID(now, topic, key, partitionKey, partitions); err != nil {
			return none, &scheduleLookupError{err}
		}
	}
	info := JobInfo{ID: id, Kind: kind, Topic: topic, Key: key, PartitionKey: partitionKey,
		Partition: -1, Offset: -1, EnqueuedAt: now, RunAt: runAt}
	headers := make([]kafka.Header, 0, 6+len(o.headers)+len(o.ordoHeaders))
	headers = append(headers, kafka.Header{Key: HeaderKind, Value: []byte(kind)}, kafka.Header{Key: HeaderJobID, Value: []byte(info.ID)})
	msg := kafka.Message{Topic: topic}
	if key != "" {
		msg.Key = []byte(key)
	}
	if partitionKey != "" {
		msg.PartitionKey = []byte(partitionKey)
		headers = append(headers, kafka.Header{Key: HeaderPartitionKey, Value: msg.PartitionKey})
	}
	for _, name := range slices.Sorted(maps.Keys(o.headers)) {
		headers = append(headers, kafka.Header{Key: name, Value: []byte(o.headers[name])})
	}
	msg.Headers = append(headers, o.ordoHeaders...)
	env := envelope.Envelope{Version: envelope.Version, Kind: kind, ID: info.ID, Args: rawArgs, EnqueuedAt: now, Metadata: o.metadata}
	return jobDraft{env: env, msg: msg, info: info}, nil
}

// record encodes the job's record: the job itself, or its schedule record.
func (d *jobDraft) record() (kafka.Message, error) {
	value, err := envelope.Encode(&d.env)
	if err != nil {
		return kafka.Message{}, err
	}
	msg := d.msg
	msg.Value = value
	if !d.info.RunAt.IsZero() {
		msg = scheduleRecord(msg, d.info.ID, d.info.RunAt)
	}
	return msg, nil
}

// partitioning returns the job's key and partition key: from the options
// when either is given, else from the args' Partitioning. An empty value is
// refused rather than sent without a key, since that would silently lose the
// job's order.
func partitioning(args JobArgs, o *enqueueOptions) (key, partitionKey string, err error) {
	if o.keySet || o.partitionKeySet {
		if o.keySet && o.key == "" {
			return "", "", errors.New("WithKey: the key is empty")
		}
		if o.partitionKeySet && o.partitionKey == "" {
			return "", "", errors.New("WithPartitionKey: the partition key is empty")
		}
		return o.key, o.partitionKey, nil
	}
	pa, ok := args.(PartitionedArgs)
	if !ok {
		return "", "", nil
	}
	p := pa.Partitioning()
	if p.Value == "" {
		return "", "", fmt.Errorf("%T.Partitioning() returned an empty Value", args)
	}
	switch p.Type {
	case KeyTypeKey:
		return p.Value, "", nil
	case KeyTypePartitionKey:
		return "", p.Value, nil
	default:
		return "", "", fmt.Errorf("%T.Partitioning() returned an unknown KeyType %d", args, p.Type)
	}
}

func isNil(args JobArgs) bool {
	if args == nil {
		return true
	}
	switch v := reflect.ValueOf(args); v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return v.IsNil()
	}
	return false
}
