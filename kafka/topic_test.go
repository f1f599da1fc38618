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
