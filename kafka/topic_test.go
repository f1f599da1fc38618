package kafka

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckTopicNameRefusesWhatKafkaRefuses(t *testing.T) {
	for _, ok := range []string{"jobs", "jobs.dlq", "a_b-c.1", strings.Repeat("x", 249)} {
		if err := CheckTopicName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a b", "jobs/x", "é", strings.Repeat("x", 250)} {
		if err := CheckTopicName(bad); !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}

// A broker address without a port is refused by every config that takes
// brokers: kafka-go would read "localhost" as localhost:9092, which may be
// another broker than the one meant.
func TestABrokerWithoutAPortIsRefused(t *testing.T) {
	for _, ok := range []string{"localhost:9092", "10.0.0.1:9093", "[::1]:9092", "[fe80::1%eth0]:9092", "kafka-1.internal:19092"} {
		if err := CheckBrokerAddress(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "localhost", "::1", "[::1]", "kafka-1:", ":9092", "kafka-1:port", "kafka-1:70000", "a:1:2"} {
		if err := CheckBrokerAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := CheckBrokerAddress("localhost"); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("the error for \"localhost\" is %v, want one saying a port is required", err)
	}
	sec := []string{"127.0.0.1:9092", "localhost"}
	_, errP := NewProducer(ProducerConfig{Brokers: sec})
	_, errC := NewConsumer(ConsumerConfig{Brokers: sec, Group: "g", Topics: []string{"t"}})
	_, errR := NewPartitionReader(ReaderConfig{Brokers: sec}, "t", 0, 0)
	for name, err := range map[string]error{
		"kafka.ProducerConfig.Brokers[1]": errP, "kafka.ConsumerConfig.Brokers[1]": errC, "kafka.ReaderConfig.Brokers[1]": errR,
	} {
		if err == nil || !strings.HasPrefix(err.Error(), name+":") || !strings.Contains(err.Error(), "port") {
			t.Errorf("error %v, want one naming %s and saying a port is required", err, name)
		}
	}
}
