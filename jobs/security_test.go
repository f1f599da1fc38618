package jobs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

type secureArgs struct {
	Key string `msgpack:"key"`
	Seq int    `msgpack:"seq"`
}

func (secureArgs) Kind() string                      { return "secure" }
func (a secureArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

// secureBroker is a SASL_SSL listener and the credentials it accepts.
type secureBroker struct {
	brokers []string
	tls     *tls.Config // the client side: trusts the broker's CA
	users   []kafka.SASL
	real    bool
}

// Passwords are distinctive so that a leak into a log is unmistakable.
const (
	embeddedPlainPassword  = "plain-Pa55-7f3c9e"
	embeddedScram256Secret = "scram256-Pa55-1b2d4f"
	embeddedScram512Secret = "scram512-Pa55-9a8b7c"
)

// newSecureBroker returns the real broker's SASL_SSL listener when
// KAFKA_SASL_SSL_BROKERS is set (scripts/kafka.sh up starts one and prints
// the variables: KAFKA_SASL_SSL_CA is the CA file, the users are the
// script's), else an embedded broker with TLS and SASL.
func newSecureBroker(t *testing.T) *secureBroker {
	t.Helper()
	if addrs := strings.TrimSpace(os.Getenv("KAFKA_SASL_SSL_BROKERS")); addrs != "" {
		pem, err := os.ReadFile(os.Getenv("KAFKA_SASL_SSL_CA"))
		if err != nil {
			t.Fatalf("KAFKA_SASL_SSL_BROKERS is set but the CA (KAFKA_SASL_SSL_CA) is not readable: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatal("KAFKA_SASL_SSL_CA holds no certificate")
		}
		return &secureBroker{
			real:    true,
			brokers: strings.Split(addrs, ","),
			tls:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			users: []kafka.SASL{
				{Mechanism: kafka.Plain, Username: "ordo-plain", Password: "ordo-plain-secret"},
				{Mechanism: kafka.ScramSHA256, Username: "ordo-scram", Password: "ordo-scram-secret"},
				{Mechanism: kafka.ScramSHA512, Username: "ordo-scram", Password: "ordo-scram-secret"},
			},
		}
	}
	serverTLS, clientTLS := testCertificates(t)
	users := []kafka.SASL{
		{Mechanism: kafka.Plain, Username: "ordo-plain", Password: embeddedPlainPassword},
		{Mechanism: kafka.ScramSHA256, Username: "ordo-256", Password: embeddedScram256Secret},
		{Mechanism: kafka.ScramSHA512, Username: "ordo-512", Password: embeddedScram512Secret},
	}
	b, err := kafkaembed.StartSecure(serverTLS, users...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &secureBroker{brokers: b.Addrs(), tls: clientTLS, users: users}
}

// testCertificates makes a throwaway CA and a certificate for 127.0.0.1
// signed by it: the broker's TLS config and a client's that trusts only
// that CA.
func testCertificates(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ordo test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return server, client
}

// Jobs are enqueued and processed over SASL_SSL with each mechanism, and no
// password reaches the logs, even at debug level.
func TestJobsRunOverSASLSSL(t *testing.T) {
	t.Parallel()
	b := newSecureBroker(t)
	for _, user := range b.users {
		t.Run(string(user.Mechanism), func(t *testing.T) {
			const n = 50
			sec := &kafka.Security{TLS: b.tls, SASL: &user}
			logger, logs := captureLogs(t, slog.LevelDebug)
			env := &kafkatest.Env{Brokers: b.brokers, Admin: kafka.NewSecureAdmin(b.brokers, sec), Name: "sasl_ssl"}
			topic := env.Topic(t, 2)
			client, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.brokers, Security: sec, Topic: topic, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			var params []jobs.EnqueueParams
			for i := range n {
				params = append(params, jobs.EnqueueParams{Args: secureArgs{Key: "k" + strconv.Itoa(i%5), Seq: i}})
			}
			if _, err := client.EnqueueMany(context.Background(), params); err != nil {
				t.Fatal(err)
			}
			var runs atomic.Int64
			ws := jobs.NewWorkers()
			mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[secureArgs]) error { runs.Add(1); return nil }))
			cfg := serverConfig(t, env, topic, ws)
			cfg.Security = sec
			cfg.Logger = logger
			startJobServer(t, cfg)
			kafkatest.WaitFor(t, time.Minute, "the jobs to run over SASL_SSL", func() bool { return runs.Load() == n })
			logger.Info("ordo: security under test", "security", user) // a SASL value logs without its password
			if strings.Contains(logs.String(), user.Password) {
				t.Errorf("the %s password appears in the logs", user.Mechanism)
			}
		})
	}
}

// Wrong credentials fail within seconds, with an error that says
// authentication failed, from both the client and the server; the wrong
// password is not logged either.
func TestWrongCredentialsFailFastAndClearly(t *testing.T) {
	t.Parallel()
	b := newSecureBroker(t)
	for _, user := range b.users {
		t.Run(string(user.Mechanism), func(t *testing.T) {
			bad := user
			bad.Password = "wrong-" + user.Password + "-X9"
			sec := &kafka.Security{TLS: b.tls, SASL: &bad}
			logger, logs := captureLogs(t, slog.LevelDebug)

			client, err := jobs.NewClient(jobs.ClientConfig{Brokers: b.brokers, Security: sec, Topic: "never-created", Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err = client.Enqueue(ctx, secureArgs{Key: "k"})
			took := time.Since(start)
			if err == nil {
				t.Fatal("enqueue with a wrong password succeeded")
			}
			// Apache Kafka answers a failed login with SASL_AUTHENTICATION_FAILED,
			// which kafka-go reports as such; the embedded broker just closes
			// the connection, so there only the speed is checked.
			if b.real && !strings.Contains(strings.ToLower(err.Error()), "authentication") {
				t.Errorf("enqueue error does not say authentication failed: %v", err)
			}
			if took > 10*time.Second {
				t.Errorf("enqueue took %v to fail", took)
			}
			t.Logf("enqueue failed after %v: %v", took, err)

			ws := jobs.NewWorkers()
			mustAdd(t, ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[secureArgs]) error { return nil }))
			s, err := jobs.NewServer(jobs.Config{Brokers: b.brokers, Security: sec, Group: "g", Topics: []string{"never-created"},
				Workers: ws, HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second, Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			// Start checks the topics first, so a wrong login fails Start
			// itself, fast.
			startCtx, startCancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer startCancel()
			start = time.Now()
			serr := s.Start(startCtx)
			if serr == nil {
				t.Fatal("Start with a wrong password succeeded")
			}
			if b.real && !strings.Contains(strings.ToLower(serr.Error()), "authentication") {
				t.Errorf("Start's error does not say authentication failed: %v", serr)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Start took %v to fail", took)
			}
			stopCtx, stopCancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer stopCancel()
			if err := s.Stop(stopCtx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			if strings.Contains(logs.String(), bad.Password) || strings.Contains(err2s(err), bad.Password) ||
				strings.Contains(serr.Error(), bad.Password) {
				t.Errorf("the wrong %s password appears in the logs or errors", user.Mechanism)
			}
		})
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestSecurityRefusesAnUnknownMechanism(t *testing.T) {
	_, err := jobs.NewClient(jobs.ClientConfig{Brokers: []string{"127.0.0.1:1"},
		Security: &kafka.Security{SASL: &kafka.SASL{Mechanism: "GSSAPI", Username: "u", Password: "secret-zz"}}})
	if err == nil || !strings.Contains(err.Error(), "GSSAPI") || strings.Contains(err.Error(), "secret-zz") {
		t.Fatalf("NewClient with SASL GSSAPI: %v", err)
	}
}
