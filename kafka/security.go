package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security says how ordo's connections to Kafka are secured: TLS, SASL, or
// both (SASL_SSL). A nil *Security means plaintext. The same value serves
// the consumer, the producers and the admin calls.
//
//	sec := &kafka.Security{
//		TLS:  &tls.Config{RootCAs: pool},
//		SASL: &kafka.SASL{Mechanism: kafka.ScramSHA512, Username: "ordo", Password: pw},
//	}
type Security struct {
	// TLS, when not nil, wraps every connection in TLS with this
	// configuration.
	TLS *tls.Config
	// SASL, when not nil, authenticates every connection.
	SASL *SASL
}

// SASLMechanism names a SASL mechanism, as Kafka's sasl.mechanism does.
type SASLMechanism string

const (
	Plain       SASLMechanism = "PLAIN"
	ScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	ScramSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// SASL is a mechanism and the credentials it authenticates with. Its
// String and LogValue never show the password, so a SASL (or a Security)
// can be logged or printed in an error.
type SASL struct {
	Mechanism SASLMechanism
	Username  string
	Password  string
}

// String shows the mechanism and user, never the password.
func (s SASL) String() string {
	return fmt.Sprintf("%s user %q (password redacted)", s.Mechanism, s.Username)
}

// LogValue keeps the password out of slog output.
func (s SASL) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", string(s.Mechanism)), slog.String("username", s.Username))
}

// GoString keeps the password out of %#v.
func (s SASL) GoString() string { return s.String() }

// Validate reports a Security that could never connect: an unknown
// mechanism or a missing user name.
func (s *Security) Validate() error {
	if s == nil || s.SASL == nil {
		return nil
	}
	_, err := s.SASL.mechanism()
	return err
}

func (s *SASL) mechanism() (sasl.Mechanism, error) {
	if s.Username == "" {
		return nil, fmt.Errorf("SASL.Username is empty (mechanism %s)", s.Mechanism)
	}
	switch s.Mechanism {
	case Plain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case ScramSHA256, ScramSHA512:
		algo := scram.SHA256
		if s.Mechanism == ScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			// The error may quote what was refused; it must not carry
			// the password into a log.
			return nil, fmt.Errorf("SASL: %s credentials for user %q are not valid SASLprep strings", s.Mechanism, s.Username)
		}
		return m, nil
	case "":
		return nil, errors.New("SASL.Mechanism is empty (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
	default:
		return nil, fmt.Errorf("SASL.Mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
	}
}

// transport returns a kafka-go transport that secures its connections as s
// says; for a nil s, a plain one. Callers validated s first.
func (s *Security) transport() *kafkago.Transport {
	t := &kafkago.Transport{}
	if s == nil {
		return t
	}
	t.TLS = s.TLS
	if s.SASL != nil {
		t.SASL, _ = s.SASL.mechanism()
	}
	return t
}

// roundTripper is transport for a kafka-go Client, except that a nil s
// leaves the Client on kafka-go's shared default transport.
func (s *Security) roundTripper() kafkago.RoundTripper {
	if s == nil {
		return nil
	}
	return s.transport()
}
