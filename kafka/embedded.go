package kafka

import (
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedBroker is an in-process Kafka-protocol cluster listening on
// loopback. It speaks the real wire protocol over TCP, so kafka-go talks to it
// exactly as it talks to Apache Kafka. Tests, examples and the demo use it
// when KAFKA_BROKERS is unset.
type EmbeddedBroker struct {
	cluster *kfake.Cluster
}

// StartEmbeddedBroker starts a single-node in-process cluster on a free
// loopback port. Like a production cluster it creates no topic on its own:
// create them with Admin.CreateTopics (or jobs.Config.CreateTopics). Close
// stops it.
func StartEmbeddedBroker() (*EmbeddedBroker, error) {
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ListenFn(listenLoopback),
		// Short session timeouts keep rebalances in tests fast; the
		// broker's defaults (6 s minimum) would reject them.
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
		kfake.DefaultNumPartitions(1),
	)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka broker: %w", err)
	}
	return &EmbeddedBroker{cluster: cluster}, nil
}

// Addrs returns the bootstrap addresses (host:port) of the broker.
func (b *EmbeddedBroker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker and drops its data.
func (b *EmbeddedBroker) Close() { b.cluster.Close() }

// listenLoopback binds the embedded broker to loopback only: tests must never
// expose a listener beyond this machine.
func listenLoopback(network, address string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		port = "0"
	}
	return net.Listen(network, net.JoinHostPort("127.0.0.1", port))
}
