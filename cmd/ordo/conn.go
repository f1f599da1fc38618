package main

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/ordo-go/ordo/kafka"
)

// conn holds the flags every subcommand takes: where Kafka is and how to
// secure the connections, as kafka.Security does.
type conn struct {
	brokers                     string
	useTLS, tlsInsecure         bool
	tlsCA, tlsCert, tlsKey      string
	tlsServerName               string
	saslMechanism, saslUsername string
	saslPassword                string
}

// newFlags returns a subcommand's flag set with the connection flags.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *conn) {
	fs := flag.NewFlagSet("ordo "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &conn{}
	fs.StringVar(&c.brokers, "brokers", envOr("ORDO_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated (env ORDO_BROKERS)")
	fs.BoolVar(&c.useTLS, "tls", false, "connect over TLS (implied by the other --tls-* flags)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM file of the CAs that sign the brokers' certificates (default: the system's)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM client certificate, for mutual TLS (with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM client key, for mutual TLS (with --tls-cert)")
	fs.StringVar(&c.tlsServerName, "tls-server-name", "", "the name the brokers' certificates must carry (default: the host of each address)")
	fs.BoolVar(&c.tlsInsecure, "tls-insecure", false, "do not verify the brokers' certificates (testing only)")
	fs.StringVar(&c.saslMechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.saslUsername, "sasl-username", "", "SASL user name")
	// A secret's flag has no default: the flag package prints a default in
	// every usage message, so the environment is read after parsing.
	fs.StringVar(&c.saslPassword, "sasl-password", "", "SASL password (default: env ORDO_SASL_PASSWORD, which keeps it out of the process list)")
	return fs, c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// parse parses args; -h is not an error.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errHelp
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	return nil
}

// errHelp ends a subcommand that printed its help.
var errHelp = errors.New("help shown")

// brokerList is --brokers split.
func (c *conn) brokerList() ([]string, error) {
	var out []string
	for _, b := range strings.Split(c.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if err := kafka.CheckBrokerAddress(b); err != nil {
				return nil, fmt.Errorf("%w: --brokers: %w", errUsage, err)
			}
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --brokers is empty", errUsage)
	}
	return out, nil
}

// security builds the kafka.Security the flags describe; nil for plaintext.
func (c *conn) security() (*kafka.Security, error) {
	var sec kafka.Security
	if c.useTLS || c.tlsCA != "" || c.tlsCert != "" || c.tlsKey != "" || c.tlsServerName != "" || c.tlsInsecure {
		cfg := &tls.Config{ServerName: c.tlsServerName, InsecureSkipVerify: c.tlsInsecure, MinVersion: tls.VersionTLS12}
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", c.tlsCA)
			}
			cfg.RootCAs = pool
		}
		if (c.tlsCert == "") != (c.tlsKey == "") {
			return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
		}
		if c.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
			if err != nil {
				return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		sec.TLS = cfg
	}
	if c.saslMechanism != "" || c.saslUsername != "" {
		sec.SASL = &kafka.SASL{Mechanism: kafka.SASLMechanism(strings.ToUpper(c.saslMechanism)),
			Username: c.saslUsername, Password: cmp.Or(c.saslPassword, os.Getenv("ORDO_SASL_PASSWORD"))}
	}
	if sec.TLS == nil && sec.SASL == nil {
		return nil, nil
	}
	if err := sec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: --sasl-*: %w", errUsage, err)
	}
	return &sec, nil
}

// kafkaConn is what a subcommand talks to Kafka with.
type kafkaConn struct {
	brokers  []string
	security *kafka.Security
	admin    *kafka.Admin
}

func (c *conn) open() (*kafkaConn, error) {
	brokers, err := c.brokerList()
	if err != nil {
		return nil, err
	}
	sec, err := c.security()
	if err != nil {
		return nil, err
	}
	return &kafkaConn{brokers: brokers, security: sec, admin: kafka.NewSecureAdmin(brokers, sec)}, nil
}

// producer is a producer on the connection; the caller closes it.
func (k *kafkaConn) producer() (*kafka.Producer, error) {
	return kafka.NewProducer(kafka.ProducerConfig{Brokers: k.brokers, Security: k.security,
		Logger: slog.New(slog.DiscardHandler)})
}
