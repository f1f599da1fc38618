package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/ordo-go/ordo/internal/enqueue"
	"github.com/ordo-go/ordo/internal/tracing"
	"github.com/ordo-go/ordo/internal/validate"
	"github.com/ordo-go/ordo/kafka"
)

var (
	// ErrInvalidEnqueue is wrapped by every error that refuses a job before
	// anything is sent (nil args, an empty kind, no topic, args that do not
	// encode, a bad option): retrying the same call cannot succeed.
	ErrInvalidEnqueue = enqueue.ErrInvalid
	// ErrClientClosed is what enqueue calls get once Close has begun.
	ErrClientClosed = enqueue.ErrClosed
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
	e *enqueue.Client
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
	w := enqueue.Writer{Producer: p, Chain: enqueueChain(cfg.Middleware)}
	if prop := cfg.Propagator; prop != nil {
		w.Inject = func(ctx context.Context, m *kafka.Message) { tracing.Inject(ctx, prop, m) }
	}
	return &Client{e: enqueue.New(enqueue.Config{Topic: cfg.Topic, Writer: w, TopicsMissing: ErrTopicsMissing,
		Reader:     kafka.ReaderConfig{Brokers: cfg.Brokers, Security: cfg.Security, FetchMaxWait: 100 * time.Millisecond, Logger: cfg.Logger},
		CancelWait: DefaultCancelWait})}, nil
}

func (c ClientConfig) validate() error {
	return validate.FirstFailed(ErrInvalidConfig, "jobs.ClientConfig", []validate.Check{
		{Field: "Brokers", Err: validate.Brokers(c.Brokers)},
		{Field: "Security", Err: c.Security.Validate()},
		{Field: "Middleware", Err: validate.NoneNil(c.Middleware)},
		{Field: "UnknownTopicWait", Err: validate.Within(c.UnknownTopicWait, time.Millisecond, time.Hour)},
		{Field: "MaxMessageBytes", Err: validate.Within(c.MaxMessageBytes, 1, 1<<30)},
		{Field: "Topic", Err: validate.OptionalTopic(c.Topic)},
	})
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
type EnqueueOption func(*enqueue.Options)

// WithTopic sends the job to topic instead of ClientConfig.Topic, e.g. to
// keep slow job types on a topic of their own. An empty or invalid name
// fails the enqueue; it never falls back to ClientConfig.Topic.
func WithTopic(topic string) EnqueueOption {
	return func(o *enqueue.Options) { o.Topic, o.TopicSet = topic, true }
}

// WithKey makes key the record's key, overriding the args' Partitioning: the
// job runs in order with every other job of that key. With WithPartitionKey
// too, the record carries key but the partition key picks the partition.
//
//	client.Enqueue(ctx, args, jobs.WithKey("user-42"))
func WithKey(key string) EnqueueOption {
	return func(o *enqueue.Options) { o.Key, o.KeySet = key, true }
}

// WithPartitionKey picks the job's partition from partitionKey (murmur2, as
// the Java client does) without giving the record a key, overriding the
// args' Partitioning. The value also travels in the HeaderPartitionKey
// header, so a consumer can derive a virtual partition from it.
func WithPartitionKey(partitionKey string) EnqueueOption {
	return func(o *enqueue.Options) { o.PartitionKey, o.PartitionKeySet = partitionKey, true }
}

// WithHeaders adds record headers, e.g. for tracing or routing by other
// consumers; several calls merge, later values winning. ordo's own header
// names (HeaderKind, HeaderJobID, HeaderPartitionKey) are refused, so a job
// cannot lie about its kind.
func WithHeaders(headers map[string]string) EnqueueOption {
	return func(o *enqueue.Options) { o.Headers = enqueue.Merge(o.Headers, headers) }
}

// WithMetadata attaches metadata to the job's envelope, which its worker
// sees as Job.Metadata; several calls merge, later values winning. Unlike
// headers, metadata stays with the job when it is retried or
// dead-lettered.
func WithMetadata(metadata map[string]string) EnqueueOption {
	return func(o *enqueue.Options) { o.Metadata = enqueue.Merge(o.Metadata, metadata) }
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
	info, err := c.e.Enqueue(ctx, args, enqueue.Collect(opts))
	return JobInfo(info), err
}

// EnqueueMany sends the jobs in one produce call, batched per partition, and
// returns once every one was acknowledged or failed; jobs of one key keep
// their order in params. If any params are invalid, nothing is sent. If some
// jobs fail, the error wraps an *EnqueueManyError whose Errs say which (by
// index, as in params), and the infos of those have Partition -1. A job
// larger than ClientConfig.MaxMessageBytes fails alone (ErrMessageTooLarge,
// its entry naming its index, kind and size); the others are written.
func (c *Client) EnqueueMany(ctx context.Context, params []EnqueueParams) ([]JobInfo, error) {
	drafts, err := c.e.EnqueueMany(ctx, len(params), func(i int) (enqueue.Args, enqueue.Options) {
		return params[i].Args, enqueue.Collect(params[i].Opts)
	})
	if drafts == nil {
		return nil, err
	}
	infos := make([]JobInfo, len(drafts))
	for i := range drafts {
		infos[i] = JobInfo(drafts[i].Info)
	}
	return infos, err
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
	c.e.EnqueueAsync(ctx, args, enqueue.Collect(opts), asyncDone(done))
}

// asyncDone is an EnqueueAsync caller's done as package enqueue calls it.
type asyncDone func(JobInfo, error)

func (f asyncDone) Done(info enqueue.Info, err error) { f(JobInfo(info), err) }

// Close stops accepting jobs, waits until every job already accepted was
// acknowledged or failed and its done ran, and releases the connections.
// Calling it again does nothing.
func (c *Client) Close() error { return c.e.Close() }
