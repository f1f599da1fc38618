package jobs

import (
	"github.com/ordo-go/ordo/internal/envelope"
)

// EnvelopeVersion is the version of the envelope (a job record's value) this
// package writes. Readers accept every version from 1 on: a later version may
// only add fields, which older readers skip. Check what a topic holds with
// EnvelopeVersionOf before a rolling upgrade or downgrade.
const EnvelopeVersion = envelope.Version

// ErrUndecodable is wrapped by the error of a record whose value is not a job
// envelope: such a record goes to the dead-letter topic with that error as its
// reason, never to a retry.
var ErrUndecodable = envelope.ErrUndecodable

// EnvelopeVersionOf reads the envelope version of a job record's value, for
// operators and tools that inspect a topic or a dead-letter topic. Its error
// wraps ErrUndecodable and says why when value is not an envelope.
//
//	v, err := jobs.EnvelopeVersionOf(msg.Value) // 1 for jobs written by this release
func EnvelopeVersionOf(value []byte) (int, error) {
	var v envelope.View
	if err := envelope.DecodeView(value, &v); err != nil {
		return 0, err
	}
	return v.Version, nil
}
