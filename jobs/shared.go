package jobs

import (
	"github.com/ordo-go/ordo/actors"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// The types below are defined by the layers jobs is built on and are part of
// jobs' API: a job user needs no other ordo package.

// Header is a Kafka record header, as VirtualKey and Job.Headers see it.
type Header = kafka.Header

// Security says how connections to Kafka are secured: TLS, SASL, or both. A
// nil *Security means plaintext.
//
//	sec := &jobs.Security{
//		TLS:  &tls.Config{RootCAs: pool},
//		SASL: &jobs.SASL{Mechanism: jobs.SASLScramSHA512, Username: "ordo", Password: pw},
//	}
type Security = kafka.Security

// SASL is a Mechanism and the credentials it authenticates with, Username
// and Password; it never prints or logs its password.
type SASL = kafka.SASL

// SASLMechanism names a SASL mechanism, as Kafka's sasl.mechanism does.
type SASLMechanism = kafka.SASLMechanism

// The SASL mechanisms ordo speaks.
const (
	SASLPlain       = kafka.Plain
	SASLScramSHA256 = kafka.ScramSHA256
	SASLScramSHA512 = kafka.ScramSHA512
)

// Backoff is the wait between a job's retries: Initial after the first
// failure, doubling on each one, capped at Max. Zero fields take
// DefaultBackoffInitial and DefaultBackoffMax.
type Backoff = supervision.Backoff

// PermanentError is what Permanent returns: a failure retrying cannot fix.
// Err is the error Permanent wrapped.
// Test for it with errors.As:
//
//	var perm *jobs.PermanentError
//	if errors.As(err, &perm) { ... }
type PermanentError = supervision.PermanentError

// RetryAfterError is what RetryAfter returns: run the job again after Delay
// rather than after the backoff's wait. Err is the error RetryAfter wrapped.
type RetryAfterError = supervision.RetryAfterError

// PartitionStats is what Server.Stats reports per assigned partition. It
// has the fields of actors.PartitionStats, which fills it (a conversion
// keeps the two alike), spelled out here so that go doc shows them.
type PartitionStats struct {
	Topic     string
	Partition int
	// Buffered counts records held: fetched and not finished, waiting at
	// their key or running. It never exceeds Config.MaxBuffered.
	Buffered int
	// PeakBuffered is the highest Buffered seen since the assignment.
	PeakBuffered int
	// Prefetched counts records fetched from Kafka and not yet handed to
	// their keys: the rest of the last fetch response (at most
	// kafka.DefaultFetchMaxBytes), waiting for Buffered to make room. A
	// partition's memory follows Buffered + Prefetched records.
	Prefetched int
	// Span is how far reading has gone past the committable offset:
	// finished records above a slower one count here, not in Buffered. It
	// stays within Config.MaxSpan.
	Span int64
	// InFlight counts jobs whose worker is running.
	InFlight int
	// Keys counts the partition's live key actors (idle ones are
	// passivated).
	Keys int
	// Committed is the last offset committed since the assignment.
	Committed int64
	// HighWatermark is the partition's end offset as last fetched, or -1
	// when not known yet: its last stable offset, which is the high
	// watermark unless a transaction is open, since ordo reads committed
	// records only. Lag is HighWatermark - Committed.
	HighWatermark int64
	// Generation is the group generation the partition is held in.
	Generation int32
	// Revoked tells whether the partition's revocation (or shutdown
	// drain) has begun.
	Revoked bool
	// MetadataFallbacks counts the commits, since the assignment, whose
	// jobs finished above the committed offset did not fit Kafka's
	// commit metadata and were left out: a crash then re-runs them.
	MetadataFallbacks int64
}

// VirtualKeyFunc computes a record's virtual-partition key from its Kafka key
// and headers (never its value): jobs with equal virtual keys run one at a
// time, in order. See Config.VirtualKey and HeaderVirtualKey.
type VirtualKeyFunc = actors.VirtualKeyFunc

// HeaderVirtualKey returns a VirtualKeyFunc that orders jobs by the value of
// the header name, falling back to the record's key when a job has no such
// header.
//
//	cfg.VirtualKey = jobs.HeaderVirtualKey("tenant")
func HeaderVirtualKey(name string) VirtualKeyFunc {
	return func(key []byte, headers []Header) []byte {
		for _, h := range headers {
			if h.Key == name {
				return h.Value
			}
		}
		return key
	}
}

// EnqueueManyError is wrapped by EnqueueMany's error when some jobs were not
// written: Errs has one entry per job, in the order of the params, nil for
// those that were.
//
//	var partial *jobs.EnqueueManyError
//	if errors.As(err, &partial) { ... partial.Errs[i] ... }
type EnqueueManyError = kafka.ProduceError

// ErrUnknownTopic is wrapped by the error of an enqueue or Cancel whose
// topic (a job topic, or its schedules topic for a job to run later) the
// brokers do not list, once the client has waited for it (see
// ClientConfig.UnknownTopicWait). The error names the topic.
var ErrUnknownTopic = kafka.ErrUnknownTopic

// ErrMessageTooLarge is wrapped by the error of a job larger than
// ClientConfig.MaxMessageBytes, or than the topic's max.message.bytes; the
// error gives its size and the limit. It fails that job only.
var ErrMessageTooLarge = kafka.ErrMessageTooLarge

// RebalanceProtocol is how a group moves partitions between servers
// (Config.Rebalance).
type RebalanceProtocol = kafka.RebalanceProtocol

// The rebalance protocols.
const (
	RebalanceEager       = kafka.Eager
	RebalanceCooperative = kafka.Cooperative
)

// ErrShutdownTimeout is wrapped by Stop's error when jobs were still running
// when Config.ShutdownTimeout passed; the message names them.
var ErrShutdownTimeout = actors.ErrShutdownTimeout

// ErrMembershipFailed is wrapped by Server.Err when the group refused the
// server for good (an inconsistent group protocol, an authorization
// failure, an invalid topic).
var ErrMembershipFailed = kafka.ErrMembershipFailed
