package kafka

import (
	"errors"
	"fmt"
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
