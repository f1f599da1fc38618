package kafka

import (
	"encoding/binary"
	"reflect"
	"testing"
)

// A subscription as a Java consumer 3.x/4.x writes it (version 3: owned
// partitions, generation and rack) is read for its topics and owned
// partitions; what ordo writes (version 1) reads back the same.
func TestSubscriptionReadsWhatJavaWritesAndRoundTrips(t *testing.T) {
	var w protoWriter
	w.int16(3)
	w.int32(1)
	w.string("orders")
	w.bytes([]byte{0, 0, 0, 7}) // CooperativeStickyAssignor's user data: the generation
	w.partitions(map[string][]int32{"orders": {2, 0}})
	w.int32(7)        // generation
	w.string("rack1") // rack id
	got, err := decodeSubscription(w.b)
	if err != nil {
		t.Fatal(err)
	}
	want := subscription{version: 3, topics: []string{"orders"}, userData: []byte{0, 0, 0, 7},
		owned: map[string][]int32{"orders": {0, 2}}, generation: 7}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}

	mine := subscription{topics: []string{"a", "b"}, owned: map[string][]int32{"a": {1}}}
	back, err := decodeSubscription(encodeSubscription(mine))
	if err != nil {
		t.Fatal(err)
	}
	if back.version != 1 || !reflect.DeepEqual(back.topics, mine.topics) || !reflect.DeepEqual(back.owned, mine.owned) {
		t.Fatalf("round trip gave %+v from %+v", back, mine)
	}
}

// Truncated or lying bytes are an error, never a panic or a huge allocation.
func TestSubscriptionRefusesTruncatedBytes(t *testing.T) {
	full := encodeSubscription(subscription{topics: []string{"orders"}, owned: map[string][]int32{"orders": {0, 1, 2}}})
	for n := 0; n < len(full); n++ {
		if _, err := decodeSubscription(full[:n]); err == nil {
			t.Errorf("decoding %d of %d bytes succeeded", n, len(full))
		}
	}
	lying := append([]byte(nil), full...)
	binary.BigEndian.PutUint32(lying[len(lying)-16:], 1<<30) // the partition count
	if _, err := decodeSubscription(lying); err == nil {
		t.Error("a partition count past the end was accepted")
	}
}

func TestAssignmentRoundTrips(t *testing.T) {
	parts := map[string][]int32{"a": {3, 1}, "b": {0}}
	got, userData, err := decodeAssignment(encodeAssignment(parts, secondRoundUserData))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string][]int32{"a": {1, 3}, "b": {0}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip gave %v, want %v", got, want)
	}
	if !reflect.DeepEqual(userData, secondRoundUserData) {
		t.Fatalf("round trip gave user data %q, want %q", userData, secondRoundUserData)
	}
	if got, _, err := decodeAssignment(nil); err != nil || len(got) != 0 {
		t.Fatalf("an empty assignment decoded to %v, %v", got, err)
	}
}

// The range assignor gives each topic's partitions out in contiguous runs,
// the first members one more, only to members subscribed to the topic, and
// orders static members by instance id so a restart keeps its place.
func TestAssignRange(t *testing.T) {
	members := []groupMember{
		{id: "m-z", instanceID: "pod-0", sub: subscription{topics: []string{"a", "b"}}},
		{id: "m-a", instanceID: "pod-1", sub: subscription{topics: []string{"a"}}},
	}
	got := assignRange(members, map[string]int{"a": 5, "b": 2})
	want := map[string]map[string][]int32{
		"m-z": {"a": {0, 1, 2}, "b": {0, 1}},
		"m-a": {"a": {3, 4}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("assignRange = %v, want %v", got, want)
	}
}
