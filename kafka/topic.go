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
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(name) > 249:
		return fmt.Errorf("%w: %d characters, more than 249", ErrInvalidTopic, len(name))
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q holds %q; Kafka allows letters, digits, '.', '_' and '-'", ErrInvalidTopic, name, c)
		}
	}
	return nil
}
