package ops

import (
	"strings"
	"testing"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// A dead letter written without the job's args says why, and is not
// replayed as an empty job: the error points at the job's source offset.
func TestADeadLetterWithoutItsArgsIsNotReplayed(t *testing.T) {
	d := newDeadLetter(&kafka.Record{Topic: "jobs.dlq", Partition: 0, Offset: 7, Key: []byte("k"), Headers: []kafka.Header{
		{Key: jobs.HeaderSourceTopic, Value: []byte("jobs")},
		{Key: jobs.HeaderSourcePartition, Value: []byte("3")},
		{Key: jobs.HeaderSourceOffset, Value: []byte("1234")},
		{Key: jobs.HeaderArgsDropped, Value: []byte("refused as too large")},
	}})
	if d.ArgsDropped != "refused as too large" {
		t.Errorf("ArgsDropped = %q", d.ArgsDropped)
	}
	_, err := ReplayMessage(&d)
	if err == nil || !strings.Contains(err.Error(), "jobs partition 3 offset 1234") {
		t.Errorf("ReplayMessage returned %v, want an error naming the job's source offset", err)
	}
}

// A source_topic header that is no topic name (a hostile or corrupt dead
// letter) fails the replay at once, rather than after the producer has
// waited for the topic to appear.
func TestADeadLetterNamingAnImpossibleSourceTopicIsNotReplayed(t *testing.T) {
	d := newDeadLetter(&kafka.Record{Topic: "jobs.dlq", Partition: 0, Offset: 8, Value: []byte{1}, Headers: []kafka.Header{
		{Key: jobs.HeaderSourceTopic, Value: []byte("jobs\x1b]0;pwned\x07")},
	}})
	if _, err := ReplayMessage(&d); err == nil || !strings.Contains(err.Error(), "cannot exist") {
		t.Errorf("ReplayMessage returned %v, want an error saying the source topic cannot exist", err)
	}
}
