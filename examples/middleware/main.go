// Command middleware shows jobs.Middleware, one value per concern for both
// halves of a job's trip: Encryption seals each job's args with AES-GCM as
// it is enqueued and opens them before Work, so the broker and anyone who
// reads the topic see ciphertext only; Tenant carries the tenant id of the
// enqueuing context in a header and puts it back into Work's context. Each is
// registered in ClientConfig.Middleware and Config.Middleware alike.
//
// The key comes from ORDO_PAYLOAD_KEY, 32 bytes in base64:
//
//	ORDO_PAYLOAD_KEY=$(openssl rand -base64 32) go run ./examples/middleware
package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// keyEnv names the environment variable that holds the payload key.
const keyEnv = "ORDO_PAYLOAD_KEY"

// InvoiceArgs is a job whose args must not be readable on the broker.
type InvoiceArgs struct {
	Customer string `msgpack:"customer"`
	Card     string `msgpack:"card"`
	Cents    int64  `msgpack:"cents"`
}

func (InvoiceArgs) Kind() string { return "send_invoice" }

func (a InvoiceArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Customer} }

// Encryption seals job args with AES-256-GCM. The job's kind and id are its
// additional data, so sealed args moved onto another job do not open.
type Encryption struct {
	aead cipher.AEAD
}

// headerSealed marks a job whose args Encryption sealed.
const headerSealed = "sealed"

// NewEncryption reads the key from ORDO_PAYLOAD_KEY.
func NewEncryption() (*Encryption, error) {
	v := os.Getenv(keyEnv)
	if v == "" {
		return nil, fmt.Errorf("%s is not set: give a 32-byte key in base64, e.g. %s=$(openssl rand -base64 32)", keyEnv, keyEnv)
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("%s is not base64: %w", keyEnv, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%s must be 32 bytes (AES-256) once decoded, not %d", keyEnv, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Encryption{aead: aead}, nil
}

// Enqueue replaces each job's args with nonce+ciphertext. The envelope holds
// args as one msgpack value, so the sealed bytes travel as msgpack bin.
func (e *Encryption) Enqueue(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	for _, j := range js {
		nonce := make([]byte, e.aead.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return err
		}
		sealed, err := msgpack.Marshal(e.aead.Seal(nonce, nonce, j.Args, additionalData(j)))
		if err != nil {
			return err
		}
		j.Args = sealed
		j.Headers = append(j.Headers, jobs.Header{Key: headerSealed, Value: []byte("aes-256-gcm")})
	}
	return next(ctx)
}

// Work opens the job's args before the worker decodes them. Args that were
// not sealed with this key never will open: the job goes straight to the
// dead-letter topic.
func (e *Encryption) Work(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	for _, j := range js {
		var sealed []byte
		if err := msgpack.Unmarshal(j.Args, &sealed); err != nil || len(sealed) < e.aead.NonceSize() {
			return jobs.Permanent(fmt.Errorf("args of job %s are not sealed", j.ID))
		}
		n := e.aead.NonceSize()
		plain, err := e.aead.Open(nil, sealed[:n], sealed[n:], additionalData(j))
		if err != nil {
			return jobs.Permanent(fmt.Errorf("args of job %s do not open: %w", j.ID, err))
		}
		j.Args = plain
	}
	return next(ctx)
}

func additionalData(j *jobs.RawJob) []byte { return []byte(j.Kind + "\x00" + j.ID) }

// Tenant carries the tenant id of the enqueuing context (WithTenant) to the
// context of Work (TenantOf), in the header "tenant". An enqueue without a
// tenant fails.
type Tenant struct{}

const headerTenant = "tenant"

type tenantKey struct{}

// WithTenant returns ctx for work done on behalf of tenant.
func WithTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, tenantKey{}, tenant)
}

// TenantOf returns the tenant of ctx, "" if none.
func TenantOf(ctx context.Context) string { s, _ := ctx.Value(tenantKey{}).(string); return s }

var errNoTenant = errors.New("no tenant in the context")

func (Tenant) Enqueue(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	tenant := TenantOf(ctx)
	if tenant == "" {
		return errNoTenant
	}
	for _, j := range js {
		j.Headers = append(j.Headers, jobs.Header{Key: headerTenant, Value: []byte(tenant)})
	}
	return next(ctx)
}

func (Tenant) Work(ctx context.Context, js []*jobs.RawJob, next func(context.Context) error) error {
	for _, h := range js[0].Headers {
		if h.Key == headerTenant {
			return next(WithTenant(ctx, string(h.Value)))
		}
	}
	return jobs.Permanent(errNoTenant)
}

func main() {
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "middleware:", err)
		os.Exit(1)
	}
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	err = run(os.Stdout, brokers, "invoices-"+rand.Text()[:8])
	stopBroker()
	if err != nil {
		fmt.Fprintln(os.Stderr, "middleware:", err)
		os.Exit(1)
	}
}

// run enqueues invoices for two tenants to topic and prints what the worker
// saw.
func run(out io.Writer, brokers []string, topic string) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	encryption, err := NewEncryption()
	if err != nil {
		return err
	}
	// Outermost first: Tenant, then Encryption, on both sides.
	middleware := []jobs.Middleware{Tenant{}, encryption}

	invoices := []InvoiceArgs{
		{Customer: "Ada Lovelace", Card: "4242-4242-4242-4242", Cents: 1999},
		{Customer: "Grace Hopper", Card: "5555-5555-5555-4444", Cents: 4200},
		{Customer: "Ada Lovelace", Card: "4242-4242-4242-4242", Cents: 500},
	}
	seen := make(chan string, len(invoices))
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[InvoiceArgs]) error {
		seen <- fmt.Sprintf("tenant %s: invoice of %d cents for %s, card %s",
			TenantOf(ctx), job.Args.Cents, job.Args.Customer, job.Args.Card)
		return nil
	}))
	if err != nil {
		return err
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "billing-" + topic, Topics: []string{topic}, Workers: workers,
		Middleware:   middleware,
		CreateTopics: &jobs.TopicSpec{Partitions: 2, ReplicationFactor: 1},
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(context.Background())) }()
	if err := server.Start(ctx); err != nil {
		return err
	}

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic, Middleware: middleware})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	for i, inv := range invoices {
		tenant := []string{"acme", "globex"}[i%2]
		if _, err := client.Enqueue(WithTenant(ctx, tenant), inv); err != nil {
			return err
		}
	}
	// Without a tenant, Tenant's Enqueue refuses the job: nothing is written.
	if _, err := client.Enqueue(ctx, invoices[0]); errors.Is(err, errNoTenant) {
		fmt.Fprintln(out, "enqueue without a tenant refused:", errNoTenant)
	} else {
		return fmt.Errorf("enqueue without a tenant returned %v, want %v", err, errNoTenant)
	}

	var lines []string
	for range invoices {
		select {
		case line := <-seen:
			lines = append(lines, line)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d invoices were sent: %w", len(lines), len(invoices), ctx.Err())
		}
	}
	slices.Sort(lines) // different customers run concurrently
	for _, line := range lines {
		fmt.Fprintln(out, line)
	}
	return nil
}
