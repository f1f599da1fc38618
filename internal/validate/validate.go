// Package validate holds the checks that package jobs builds its configs'
// validation from: one verdict per setting, the first failure reported as
// an error naming the setting as the user wrote it. It knows nothing of
// jobs' types; jobs lists which check applies to which field.
package validate

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ordo-go/ordo/kafka"
)

// Check is one setting's verdict: nil, or why it is wrong.
type Check struct {
	Field string
	Err   error
}

// FirstFailed returns the first failed check, in the order given, as an
// error wrapping invalid that names the setting of config:
// "invalid configuration: jobs.Config.IdleTimeout: must not be negative
// (got -1s)".
func FirstFailed(invalid error, config string, checks []Check) error {
	for _, c := range checks {
		var el *ElementError
		switch {
		case c.Err == nil:
		case errors.As(c.Err, &el):
			return fmt.Errorf("%w: %s.%s[%d]: %w", invalid, config, c.Field, el.Index, el.Err)
		default:
			return fmt.Errorf("%w: %s.%s: %w", invalid, config, c.Field, c.Err)
		}
	}
	return nil
}

// ElementError is what is wrong with one element of a list setting.
type ElementError struct {
	Index int
	Err   error
}

func (e *ElementError) Error() string { return fmt.Sprintf("[%d]: %v", e.Index, e.Err) }
func (e *ElementError) Unwrap() error { return e.Err }

// Within checks v against [lo, hi]; zero is always allowed (it takes the
// default).
func Within[T int | time.Duration](v, lo, hi T) error {
	if err := AtLeast(v, lo); err != nil {
		return err
	}
	if v > hi {
		return fmt.Errorf("must be at most %v (got %v)", hi, v)
	}
	return nil
}

// AtLeast checks v against lo, with no upper bound; zero is always allowed
// (it takes the default).
func AtLeast[T int | time.Duration](v, lo T) error {
	switch {
	case v == 0:
		return nil
	case v < 0:
		return fmt.Errorf("must not be negative (got %v)", v)
	case v < lo:
		return fmt.Errorf("must be at least %v (got %v)", lo, v)
	}
	return nil
}

// NoneNil checks a list setting whose elements must not be nil.
func NoneNil[E any](list []E) error {
	for i, e := range list {
		if any(e) == nil {
			return &ElementError{i, errors.New("is nil")}
		}
	}
	return nil
}

// Brokers checks a list of bootstrap addresses, each host:port.
func Brokers(brokers []string) error {
	if len(brokers) == 0 {
		return errors.New("is empty; give at least one host:port")
	}
	for i, b := range brokers {
		if b == "" {
			return &ElementError{i, errors.New("is empty")}
		}
		if err := kafka.CheckBrokerAddress(b); err != nil {
			return &ElementError{i, err}
		}
	}
	return nil
}

// Topics checks a required list of topics to consume: valid names, each
// named once.
func Topics(topics []string) error {
	if len(topics) == 0 {
		return errors.New("is empty; give the topics to consume")
	}
	for i, t := range topics {
		if err := kafka.CheckTopicName(t); err != nil {
			return &ElementError{i, err}
		}
		if slices.Contains(topics[:i], t) {
			return &ElementError{i, fmt.Errorf("%q is named twice", t)}
		}
	}
	return nil
}

// NonEmpty checks a required string; hint says what to give.
func NonEmpty(s, hint string) error {
	if s == "" {
		return fmt.Errorf("is empty; %s", hint)
	}
	return nil
}

// OptionalTopic checks a topic name that may be left empty for its default.
func OptionalTopic(t string) error {
	if t == "" {
		return nil
	}
	return kafka.CheckTopicName(t)
}

// OptionalInstanceID checks a static member's group.instance.id, which may
// be left empty for a dynamic member.
func OptionalInstanceID(id string) error {
	if id == "" {
		return nil
	}
	return kafka.CheckGroupInstanceID(id)
}

// TopicSpec checks how a missing topic is created.
func TopicSpec(partitions, replicationFactor int) error {
	if partitions < 1 || replicationFactor < 1 {
		return fmt.Errorf("needs Partitions and ReplicationFactor of at least 1 (got %d and %d)", partitions, replicationFactor)
	}
	return nil
}
