package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// The consumer protocol: the bytes a member of a classic consumer group puts
// in JoinGroup (its subscription) and the leader puts in SyncGroup (each
// member's assignment). ordo reads and writes them itself, rather than
// through kafka-go, so that it reads every version a Java consumer writes
// (up to 3, with owned partitions, generation and rack) and so that the
// group's protocols interoperate with other clients.

// subscription is a member's JoinGroup metadata.
type subscription struct {
	version  int16
	topics   []string
	userData []byte
	// owned are the partitions the member holds as it joins (version 1+).
	owned map[string][]int32
	// generation is the last generation the member held them in (version
	// 2+; -1 when unknown).
	generation int32
}

// encodeSubscription writes s at version 1: topics, user data and owned
// partitions, which every broker and client since Kafka 2.4 reads.
func encodeSubscription(s subscription) []byte {
	var w protoWriter
	w.int16(1)
	w.int32(int32(len(s.topics)))
	for _, t := range s.topics {
		w.string(t)
	}
	w.bytes(s.userData)
	w.partitions(s.owned)
	return w.b
}

func decodeSubscription(b []byte) (subscription, error) {
	r := protoReader{b: b}
	s := subscription{version: r.int16(), generation: -1}
	n := r.int32()
	for i := int32(0); i < n && r.err == nil; i++ {
		s.topics = append(s.topics, r.string())
	}
	s.userData = r.bytes()
	if s.version >= 1 {
		s.owned = r.partitions()
	}
	if s.version >= 2 {
		s.generation = r.int32()
	}
	// Version 3 adds a rack id, which ordo's assignors do not use; later
	// versions may only add fields after it.
	if r.err != nil {
		return s, fmt.Errorf("consumer protocol subscription (version %d): %w", s.version, r.err)
	}
	return s, nil
}

// encodeAssignment writes a member's assigned partitions at version 1, with
// the assignor's user data (nil for none).
func encodeAssignment(parts map[string][]int32, userData []byte) []byte {
	var w protoWriter
	w.int16(1)
	w.partitions(parts)
	w.bytes(userData)
	return w.b
}

func decodeAssignment(b []byte) (parts map[string][]int32, userData []byte, err error) {
	if len(b) == 0 {
		return nil, nil, nil // a member given nothing may get no bytes at all
	}
	r := protoReader{b: b}
	version := r.int16()
	parts = r.partitions()
	userData = r.bytes()
	if r.err != nil {
		return nil, nil, fmt.Errorf("consumer protocol assignment (version %d): %w", version, r.err)
	}
	return parts, userData, nil
}

type protoWriter struct{ b []byte }

func (w *protoWriter) int16(v int16) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)) }
func (w *protoWriter) int32(v int32) { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }

func (w *protoWriter) string(s string) {
	w.int16(int16(len(s)))
	w.b = append(w.b, s...)
}

func (w *protoWriter) bytes(b []byte) {
	if b == nil {
		w.int32(-1)
		return
	}
	w.int32(int32(len(b)))
	w.b = append(w.b, b...)
}

// partitions writes topics in name order and their partitions ascending, so
// equal assignments encode to equal bytes.
func (w *protoWriter) partitions(parts map[string][]int32) {
	topics := make([]string, 0, len(parts))
	for t := range parts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	w.int32(int32(len(topics)))
	for _, t := range topics {
		w.string(t)
		ps := slices.Sorted(slices.Values(parts[t]))
		w.int32(int32(len(ps)))
		for _, p := range ps {
			w.int32(p)
		}
	}
}

var errShort = errors.New("truncated")

// protoReader reads the classic (non-flexible) encoding; the first error
// sticks and later reads return zero values.
type protoReader struct {
	b   []byte
	err error
}

func (r *protoReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = errShort
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *protoReader) int16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *protoReader) int32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *protoReader) int64() int64 {
	if b := r.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func (r *protoReader) string() string {
	n := r.int16()
	if n < 0 {
		return ""
	}
	return string(r.take(int(n)))
}

func (r *protoReader) bytes() []byte {
	n := r.int32()
	if n < 0 {
		return nil
	}
	return slices.Clone(r.take(int(n)))
}

// view reads nullable bytes as a slice of the input, not a copy: a fetch
// response's record batches, read once and then released.
func (r *protoReader) view() []byte {
	n := r.int32()
	if n < 0 {
		return nil
	}
	return r.take(int(n))
}

// count reads an array's length: null reads as empty, and a length the rest
// could not hold at minSize bytes an element is an error.
func (r *protoReader) count(minSize int) int {
	n := int(r.int32())
	if n <= 0 || r.err != nil {
		return 0
	}
	if n > len(r.b)/minSize {
		r.err = errShort
		return 0
	}
	return n
}

func (r *protoReader) partitions() map[string][]int32 {
	n := r.int32()
	if n < 0 || r.err != nil {
		return nil
	}
	out := make(map[string][]int32)
	for i := int32(0); i < n && r.err == nil; i++ {
		t := r.string()
		m := r.int32()
		if m < 0 || int(m) > len(r.b)/4 {
			r.err = errShort
			return nil
		}
		ps := make([]int32, m)
		for j := range ps {
			ps[j] = r.int32()
		}
		out[t] = append(out[t], ps...)
	}
	return out
}

// groupMember is one member as the leader sees it in a JoinGroup response.
type groupMember struct {
	id, instanceID string
	sub            subscription
}

// sortKey orders members for assignment: by instance id when static, so a
// restarted static member takes the same place, else by member id.
func (m groupMember) sortKey() string {
	if m.instanceID != "" {
		return "0" + m.instanceID
	}
	return "1" + m.id
}

// assignRange is Kafka's range assignor: per topic, the members subscribed
// to it in order, each given a contiguous run of partitions, the first ones
// one more when they do not divide evenly. partitions has each topic's
// partition count.
func assignRange(members []groupMember, partitions map[string]int) map[string]map[string][]int32 {
	out := make(map[string]map[string][]int32, len(members))
	for _, m := range members {
		out[m.id] = map[string][]int32{}
	}
	topics := make([]string, 0, len(partitions))
	for t := range partitions {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		var subs []groupMember
		for _, m := range members {
			if slices.Contains(m.sub.topics, t) {
				subs = append(subs, m)
			}
		}
		if len(subs) == 0 {
			continue
		}
		sort.Slice(subs, func(i, j int) bool { return subs[i].sortKey() < subs[j].sortKey() })
		n := partitions[t]
		per, extra := n/len(subs), n%len(subs)
		next := 0
		for i, m := range subs {
			count := per
			if i < extra {
				count++
			}
			for p := next; p < next+count; p++ {
				out[m.id][t] = append(out[m.id][t], int32(p))
			}
			next += count
		}
	}
	return out
}
