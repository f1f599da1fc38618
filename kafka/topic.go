package kafka

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ErrInvalidTopic is wrapped by CheckTopicName's errors.
var ErrInvalidTopic = errors.New("invalid topic name")

// CheckTopicName says why Kafka would refuse name as a topic: empty, longer
// than 249 characters, "." or "..", or holding a character other than ASCII
// letters, digits, '.', '_' and '-'.
func CheckTopicName(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTopic, err)
	}
	return nil
}

// CheckBrokerAddress says why addr is not a broker address host:port (an
// IPv6 host in brackets, "[::1]:9092"). A port is required: kafka-go would
// read "localhost" as localhost:9092, which may be another broker than the
// one meant.
func CheckBrokerAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port; a port is required (such as %q)", addr, "localhost:9092")
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q has port %q; a port is required, a number from 1 to 65535", addr, port)
	}
	return nil
}

// checkBrokers applies CheckBrokerAddress to the brokers of a config named
// config, such as "kafka.ProducerConfig".
func checkBrokers(config string, brokers []string) error {
	if len(brokers) == 0 {
		return fmt.Errorf("%s.Brokers is empty", config)
	}
	for i, b := range brokers {
		if err := CheckBrokerAddress(b); err != nil {
			return fmt.Errorf("%s.Brokers[%d]: %w", config, i, err)
		}
	}
	return nil
}

// CheckGroupInstanceID says why Kafka would refuse id as a group instance id
// (ConsumerConfig.InstanceID): the same rule as for topic names.
func CheckGroupInstanceID(id string) error { return checkName(id) }

// checkName applies Kafka's rule for topic names and group instance ids.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > 249:
		return fmt.Errorf("%d characters, more than 249", len(name))
	case name == "." || name == "..":
		return fmt.Errorf("%q", name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q holds %q; Kafka allows letters, digits, '.', '_' and '-'", name, c)
		}
	}
	return nil
}
