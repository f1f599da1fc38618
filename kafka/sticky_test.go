package kafka

import (
	"reflect"
	"testing"
)

func member(id string, gen int32, owned map[string][]int32) groupMember {
	return groupMember{id: id, sub: subscription{version: 1, topics: []string{"t"}, owned: owned,
		userData: stickyUserData(gen), generation: -1}}
}

type assignment = map[string]map[string][]int32

func TestCooperativeStickySpreadsAFreshGroupEvenly(t *testing.T) {
	got := assignCooperativeSticky([]groupMember{member("a", -1, nil), member("b", -1, nil), member("c", -1, nil)},
		map[string]int{"t": 7})
	sizes := map[string]int{}
	seen := map[int32]bool{}
	for id, parts := range got {
		sizes[id] = len(parts["t"])
		for _, p := range parts["t"] {
			if seen[p] {
				t.Fatalf("partition %d assigned twice: %v", p, got)
			}
			seen[p] = true
		}
	}
	if len(seen) != 7 || sizes["a"]+sizes["b"]+sizes["c"] != 7 || sizes["a"] < 2 || sizes["b"] < 2 || sizes["c"] < 2 {
		t.Fatalf("7 partitions over 3 members: %v", got)
	}
}

// A third member joins: the two owners keep two partitions each and give up
// one, which nobody gets in this round; the next round hands them to the
// newcomer. No partition ever has two owners, and none that stays moves.
// The leader announces the second round after the first (it takes
// partitions from their owners), and not after the second.
func TestCooperativeStickyMovesOnlyWhatMustMoveInTwoRounds(t *testing.T) {
	parts := map[string]int{"t": 6}
	members1 := []groupMember{
		member("a", 5, map[string][]int32{"t": {0, 1, 2}}),
		member("b", 5, map[string][]int32{"t": {3, 4, 5}}),
		member("c", -1, nil),
	}
	round1 := assignCooperativeSticky(members1, parts)
	want1 := assignment{"a": {"t": {0, 1}}, "b": {"t": {3, 4}}, "c": {}}
	if !reflect.DeepEqual(round1, want1) {
		t.Fatalf("first round %v, want %v", round1, want1)
	}
	if !takesOwned(members1, round1) {
		t.Error("the first round takes partitions from their owners, but would not announce a second")
	}
	members2 := []groupMember{
		member("a", 6, round1["a"]),
		member("b", 6, round1["b"]),
		member("c", 6, nil),
	}
	round2 := assignCooperativeSticky(members2, parts)
	want2 := assignment{"a": {"t": {0, 1}}, "b": {"t": {3, 4}}, "c": {"t": {2, 5}}}
	if !reflect.DeepEqual(round2, want2) {
		t.Fatalf("second round %v, want %v", round2, want2)
	}
	if takesOwned(members2, round2) {
		t.Error("the second round takes nothing from anyone, but would announce a third")
	}
}

// A member that missed a rebalance still claims partitions another member
// got since: the newer generation's claim wins, and the stale claimant keeps
// nothing it does not own.
func TestCooperativeStickyTrustsTheNewerGeneration(t *testing.T) {
	got := assignCooperativeSticky([]groupMember{
		member("stale", 3, map[string][]int32{"t": {0, 1}}),
		member("fresh", 4, map[string][]int32{"t": {1}}),
	}, map[string]int{"t": 2})
	want := assignment{"stale": {"t": {0}}, "fresh": {"t": {1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A member leaves: its partitions were owned by nobody left, so they are
// assigned at once, and the others keep theirs.
func TestCooperativeStickyHandsALeaversPartitionsOverAtOnce(t *testing.T) {
	got := assignCooperativeSticky([]groupMember{
		member("a", 7, map[string][]int32{"t": {0, 1}}),
		member("b", 7, map[string][]int32{"t": {2, 3}}),
	}, map[string]int{"t": 6})
	if len(got["a"]["t"]) != 3 || len(got["b"]["t"]) != 3 || got["a"]["t"][0] != 0 || got["b"]["t"][0] != 2 {
		t.Fatalf("got %v; want 3 each, keeping 0,1 and 2,3", got)
	}
}

func TestOwnedGenerationReadsJavaUserData(t *testing.T) {
	if g := ownedGeneration(subscription{generation: -1, userData: stickyUserData(42)}); g != 42 {
		t.Fatalf("generation from user data: %d", g)
	}
	if g := ownedGeneration(subscription{generation: 9, userData: stickyUserData(42)}); g != 9 {
		t.Fatalf("a v2 subscription's generation field wins: %d", g)
	}
}

// A server's group holds its job topic and the topic's schedules topic. A
// second server joins one that holds all eight partitions: each topic is
// split two and two, so neither server is left with only job partitions or
// only schedules partitions (balancing the total alone moved the four
// schedules partitions and kept the four job partitions).
func TestCooperativeStickyBalancesEachTopic(t *testing.T) {
	two := func(id string, gen int32, owned map[string][]int32) groupMember {
		m := member(id, gen, owned)
		m.sub.topics = []string{"jobs", "jobs.schedule"}
		return m
	}
	parts := map[string]int{"jobs": 4, "jobs.schedule": 4}
	all := map[string][]int32{"jobs": {0, 1, 2, 3}, "jobs.schedule": {0, 1, 2, 3}}
	round1 := assignCooperativeSticky([]groupMember{two("a", 3, all), two("b", -1, nil)}, parts)
	round2 := assignCooperativeSticky([]groupMember{two("a", 4, round1["a"]), two("b", 4, round1["b"])}, parts)
	want := assignment{"a": {"jobs": {0, 1}, "jobs.schedule": {0, 1}}, "b": {"jobs": {2, 3}, "jobs.schedule": {2, 3}}}
	if !reflect.DeepEqual(round2, want) {
		t.Fatalf("after two rounds %v, want %v", round2, want)
	}
	// Topics of one partition each spread over the members by their total.
	fresh := assignCooperativeSticky([]groupMember{two("a", -1, nil), two("b", -1, nil)}, map[string]int{"jobs": 1, "jobs.schedule": 1})
	if len(fresh["a"]) != 1 || len(fresh["b"]) != 1 {
		t.Fatalf("two one-partition topics over two members: %v, want one each", fresh)
	}
}
