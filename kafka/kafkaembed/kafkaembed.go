// Package kafkaembed runs an in-process Kafka-protocol broker on loopback,
// for tests, examples and demos. It speaks the real wire protocol over TCP,
// so ordo talks to it exactly as it talks to Apache Kafka.
//
// It lives apart from package kafka so that a service importing ordo does
// not link a fake cluster (franz-go's kfake) into its binary: only code that
// imports this package does.
//
//	broker, err := kafkaembed.Start()
//	if err != nil { ... }
//	defer broker.Close()
//	brokers := broker.Addrs()
package kafkaembed

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ordo-go/ordo/kafka"
)

// Broker is a single-node in-process cluster listening on loopback.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts a broker on a free loopback port. Like a production cluster
// it creates no topic on its own: create them with kafka.Admin.CreateTopics
// (or jobs.Config.CreateTopics). Close stops it.
func Start() (*Broker, error) {
	cluster, err := kfake.NewCluster(baseOpts()...)
	if err != nil {
		return nil, fmt.Errorf("kafkaembed: start broker: %w", err)
	}
	return &Broker{cluster: cluster}, nil
}

// StartSecure starts a broker like Start whose listener speaks TLS with
// serverTLS (when not nil) and, when users are given, requires SASL: each
// user may log in with its mechanism and password. It lets tests exercise
// kafka.Security without a real broker.
func StartSecure(serverTLS *tls.Config, users ...kafka.SASL) (*Broker, error) {
	opts := baseOpts()
	if serverTLS != nil {
		opts = append(opts, kfake.TLS(serverTLS))
	}
	if len(users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range users {
			opts = append(opts, kfake.Superuser(string(u.Mechanism), u.Username, u.Password))
		}
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafkaembed: start secure broker: %w", err)
	}
	return &Broker{cluster: cluster}, nil
}

// FromEnv returns the brokers named in KAFKA_BROKERS (comma-separated) when
// it is set, and otherwise starts a broker with Start. stop closes the
// broker it started, if any. Programs and tests that call it run on the
// embedded broker by default and on a real cluster when asked:
//
//	brokers, stop, err := kafkaembed.FromEnv()
//	if err != nil { ... }
//	defer stop()
func FromEnv() (brokers []string, stop func(), err error) {
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		return strings.Split(v, ","), func() {}, nil
	}
	b, err := Start()
	if err != nil {
		return nil, nil, err
	}
	return b.Addrs(), b.Close, nil
}

// Addrs returns the bootstrap addresses (host:port) of the broker.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker and drops its data.
func (b *Broker) Close() { b.cluster.Close() }

func baseOpts() []kfake.Opt {
	return []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenLoopback),
		// Short session timeouts keep rebalances in tests fast; the
		// broker's defaults (6 s minimum) would reject them.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.DefaultNumPartitions(1),
	}
}

// listenLoopback binds the broker to loopback only: tests must never expose
// a listener beyond this machine.
func listenLoopback(network, address string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		port = "0"
	}
	return net.Listen(network, net.JoinHostPort("127.0.0.1", port))
}
