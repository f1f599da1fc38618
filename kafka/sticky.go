package kafka

import (
	"encoding/binary"
	"slices"
	"sort"
)

// protocolCooperativeSticky names the cooperative sticky assignor as Java's
// CooperativeStickyAssignor does, so ordo members and Java consumers using
// cooperative-sticky can share a group and either can lead it.
const protocolCooperativeSticky = "cooperative-sticky"

// stickyUserData is what Java's CooperativeStickyAssignor puts in a
// subscription's user data: the generation its owned partitions are from.
func stickyUserData(generation int32) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(generation))
}

// ownedGeneration is the generation a member's owned partitions are from: the
// subscription's field (version 2+), else the user data's, else -1.
func ownedGeneration(s subscription) int32 {
	if s.generation >= 0 {
		return s.generation
	}
	if len(s.userData) == 4 {
		return int32(binary.BigEndian.Uint32(s.userData))
	}
	return -1
}

// secondRoundUserData is the user data an ordo leader puts in every
// member's assignment when the round takes partitions from their owners.
// Each such owner joins again as soon as it has drained them, and the
// partitions reach their new owners only when every member has joined that
// second round; a member learns of it from a heartbeat, so without word of
// it each member would leave the partitions idle for up to a heartbeat
// interval. Told, members heartbeat every followUpBeat until it comes.
// Java's assignor ignores an assignment's user data; a group led by a Java
// member sends none, and its ordo members learn of the second round at
// their next heartbeat, as Java's do.
var secondRoundUserData = []byte("ordo:second-round")

// takesOwned tells whether assigned leaves out a partition its member
// owns: that owner revokes it and rejoins, so a second round follows.
func takesOwned(members []groupMember, assigned map[string]map[string][]int32) bool {
	for _, m := range members {
		for t, ps := range m.sub.owned {
			for _, p := range ps {
				if !slices.Contains(assigned[m.id][t], p) {
					return true
				}
			}
		}
	}
	return false
}

type topicPart struct {
	topic     string
	partition int32
}

// assignCooperativeSticky is the cooperative sticky assignor (KIP-429): the
// balanced assignment that moves the fewest partitions from their current
// owners, minus, for this round, every partition that would move. Its owner
// gives it up now (it is not in its assignment), drains it, and joins again;
// the next round finds it unowned and assigns it. So no partition is ever
// owned by two members at once, and the partitions that stay never stop.
//
// Balance is per topic: each topic's n partitions go ⌊n/m⌋ or ⌈n/m⌉ to
// each of the m members that subscribe to it, the extra ones to the members
// holding the fewest partitions in all. A server's group holds its job
// topics and its schedules topics; balancing only the total could hand one
// server every job partition and another every schedules partition.
func assignCooperativeSticky(members []groupMember, partitions map[string]int) map[string]map[string][]int32 {
	sort.Slice(members, func(i, j int) bool { return members[i].sortKey() < members[j].sortKey() })
	subscribed := func(m groupMember, t string) bool { return slices.Contains(m.sub.topics, t) }

	topics := make([]string, 0, len(partitions))
	for t := range partitions {
		topics = append(topics, t)
	}
	sort.Strings(topics)

	// Current owners. A partition two members claim (one missed a
	// rebalance) belongs to the one with the newer generation.
	owner := map[topicPart]int{}
	ownerGen := map[topicPart]int32{}
	for i, m := range members {
		gen := ownedGeneration(m.sub)
		for t, ps := range m.sub.owned {
			if !subscribed(m, t) {
				continue
			}
			for _, p := range ps {
				tp := topicPart{t, p}
				if int(p) >= partitions[t] {
					continue // the topic shrank or is gone
				}
				if _, ok := owner[tp]; ok && ownerGen[tp] >= gen {
					continue
				}
				owner[tp], ownerGen[tp] = i, gen
			}
		}
	}

	m := len(members)
	if m == 0 {
		return map[string]map[string][]int32{}
	}
	target := make([][]topicPart, m)
	for _, t := range topics {
		balanceTopic(t, partitions[t], members, owner, target)
	}

	// This round: a partition moving to a new owner is held back until its
	// current owner has given it up.
	out := make(map[string]map[string][]int32, m)
	for i, mem := range members {
		parts := map[string][]int32{}
		for _, tp := range target[i] {
			if j, owned := owner[tp]; owned && j != i {
				continue
			}
			parts[tp.topic] = append(parts[tp.topic], tp.partition)
		}
		out[mem.id] = parts
	}
	return out
}

// balanceTopic adds topic's partitions (n of them) to target: each
// subscriber keeps those it owns up to its quota (⌊n/m⌋, or ⌈n/m⌉ while
// extra places remain, for one that owns more), and the rest go to the
// subscriber holding the fewest of topic's, then the fewest in all.
func balanceTopic(topic string, n int, members []groupMember, owner map[topicPart]int, target [][]topicPart) {
	var subs []int
	for i, mem := range members {
		if slices.Contains(mem.sub.topics, topic) {
			subs = append(subs, i)
		}
	}
	if len(subs) == 0 {
		return
	}
	floor, extra := n/len(subs), n%len(subs)
	count := make(map[int]int, len(subs))
	taken := make(map[int32]bool, n)
	for _, i := range subs {
		var kept []topicPart
		for p := range int32(n) {
			if j, ok := owner[topicPart{topic, p}]; ok && j == i {
				kept = append(kept, topicPart{topic, p})
			}
		}
		quota := floor
		if len(kept) > floor && extra > 0 {
			quota++
			extra--
		}
		kept = kept[:min(len(kept), quota)]
		for _, tp := range kept {
			taken[tp.partition] = true
		}
		target[i] = append(target[i], kept...)
		count[i] = len(kept)
	}
	for p := range int32(n) {
		if taken[p] {
			continue
		}
		best := subs[0]
		for _, i := range subs[1:] {
			if count[i] < count[best] || count[i] == count[best] && len(target[i]) < len(target[best]) {
				best = i
			}
		}
		target[best] = append(target[best], topicPart{topic, p})
		count[best]++
	}
}
