package actors

import (
	"strconv"

	"github.com/ordo-go/ordo/kafka"
)

// VirtualKeyFunc computes a record's virtual-partition key from its Kafka key
// and headers (never from its value: routing must not need to decode it).
// Records with the same virtual key run one at a time, in offset order. The
// result is only read while the record is routed, so it may be key itself or
// a header's value: routing a record to a live key allocates nothing.
type VirtualKeyFunc func(key []byte, headers []kafka.Header) []byte

// KeyOfRecord is the default VirtualKeyFunc: the message key. Records without
// a key share one virtual partition per Kafka partition.
func KeyOfRecord(key []byte, _ []kafka.Header) []byte { return key }

// reducer maps virtual keys onto a fixed number of virtual partitions, for
// users who want Karafka's max_partitions behaviour. It is consistent: a key
// maps to the same slot on every batch, in every process, after restarts.
type reducer struct {
	names []string
}

// newReducer returns a reducer onto slots virtual partitions (slots ≥ 1).
func newReducer(slots int) reducer {
	names := make([]string, slots)
	for i := range names {
		names[i] = "vp-" + strconv.Itoa(i)
	}
	return reducer{names: names}
}

// Slot returns the slot index of key, in [0, slots).
func (r reducer) Slot(key []byte) int {
	// FNV-1a, inline so the hot path does not allocate a hash.Hash.
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(len(r.names)))
}

// Reduce returns the virtual key of key's slot.
func (r reducer) Reduce(key []byte) string { return r.names[r.Slot(key)] }
