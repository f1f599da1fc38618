// Package exampleenv is the little the examples share and that is not part of
// using ordo: which broker to talk to, and unique names.
package exampleenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"

	"github.com/ordo-go/ordo/kafka"
)

// Brokers returns the addresses in KAFKA_BROKERS, or starts an in-process
// broker; stop releases it.
func Brokers() (brokers []string, stop func(), err error) {
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		return strings.Split(v, ","), func() {}, nil
	}
	b, err := kafka.StartEmbeddedBroker()
	if err != nil {
		return nil, nil, err
	}
	return b.Addrs(), b.Close, nil
}

// Suffix returns a random suffix for topic and group names, so runs against
// a shared broker never see each other's data.
func Suffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
