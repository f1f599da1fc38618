package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/kafkatest"
)

// TestConsumerGroupRoundTrip checks the ground ordo stands on, with kafka-go
// alone: records produced with keys come back through a consumer group once
// each and in partition order, committed offsets read back from the broker
// match what was consumed, and a second member joining starts a new generation
// that splits the partitions between the two members.
func TestConsumerGroupRoundTrip(t *testing.T) {
	t.Parallel()
	const (
		records    = 10_000
		partitions = 4
	)
	env := kafkatest.New(t)
	topic := env.Topic(t, partitions)
	group := env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	produceNumbered(ctx, t, env.Brokers, topic, records)

	first := newGroup(t, env.Brokers, topic, group)
	gen, err := first.Next(ctx)
	if err != nil {
		t.Fatalf("first member: next generation: %v", err)
	}
	if got := len(gen.Assignments[topic]); got != partitions {
		t.Fatalf("first member alone got %d partitions, want %d", got, partitions)
	}

	seen := consumeAll(ctx, t, env.Brokers, gen, topic, records)
	if len(seen) != records {
		t.Fatalf("consumed %d distinct records, want %d", len(seen), records)
	}

	next := map[int]int64{}
	for _, a := range gen.Assignments[topic] {
		next[a.ID] = 0
	}
	for _, c := range seen {
		if c.offset+1 > next[c.partition] {
			next[c.partition] = c.offset + 1
		}
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{topic: next}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	committed, err := env.Admin.CommittedOffsets(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for p, want := range next {
		if committed[p] != want {
			t.Errorf("partition %d: committed offset on broker %d, want %d", p, committed[p], want)
		}
		total += committed[p]
	}
	if total != records {
		t.Errorf("committed offsets add up to %d, want %d", total, records)
	}

	// A second member joins: the first member's generation ends, and both
	// members meet in one new generation with the partitions split.
	second := newGroup(t, env.Brokers, topic, group)
	type joined struct {
		gen *kafkago.Generation
		err error
	}
	secondGen := make(chan joined, 1)
	go func() {
		g, err := second.Next(ctx)
		secondGen <- joined{g, err}
	}()
	gen.Start(func(genCtx context.Context) { <-genCtx.Done() })
	regen, err := first.Next(ctx)
	if err != nil {
		t.Fatalf("first member: generation after join: %v", err)
	}
	j := <-secondGen
	if j.err != nil {
		t.Fatalf("second member: next generation: %v", j.err)
	}
	if regen.ID <= gen.ID || j.gen.ID != regen.ID {
		t.Fatalf("generations: first member %d then %d, second member %d; want one new generation above %d",
			gen.ID, regen.ID, j.gen.ID, gen.ID)
	}
	a, b := partitionIDs(regen.Assignments[topic]), partitionIDs(j.gen.Assignments[topic])
	if len(a) == 0 || len(b) == 0 || len(a)+len(b) != partitions {
		t.Fatalf("partitions after rebalance: first %v, second %v; want a split of all %d", a, b, partitions)
	}
	for _, p := range append(a, b...) {
		for _, pa := range regen.Assignments[topic] {
			if pa.ID == p && pa.Offset != next[p] {
				t.Errorf("partition %d restarts at %d, want committed %d", p, pa.Offset, next[p])
			}
		}
	}
	t.Logf("generation %d → %d: first member %v, second member %v", gen.ID, regen.ID, a, b)
}

type consumed struct {
	partition int
	offset    int64
}

// produceNumbered writes n records keyed "key-<i%97>" whose values are their
// sequence numbers.
func produceNumbered(ctx context.Context, t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafkago.Hash{},
		BatchSize:    1000,
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafkago.RequireAll,
	}
	defer w.Close()
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: []byte(fmt.Sprintf("key-%d", i%97)), Value: []byte(strconv.Itoa(i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce %d records: %v", n, err)
	}
}

func newGroup(t *testing.T, brokers []string, topic, group string) *kafkago.ConsumerGroup {
	t.Helper()
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                group,
		Brokers:           brokers,
		Topics:            []string{topic},
		HeartbeatInterval: 300 * time.Millisecond,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		StartOffset:       kafkago.FirstOffset,
		JoinGroupBackoff:  200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Close() })
	return cg
}

// consumeAll reads every partition of the generation from its assigned offset
// until n records arrived in all, checking that each arrives once and that
// each partition's offsets run without gaps or reordering.
func consumeAll(ctx context.Context, t *testing.T, brokers []string, gen *kafkago.Generation, topic string, n int) map[int]consumed {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		seen  = make(map[int]consumed, n)
		fault error
		wg    sync.WaitGroup
		done  = make(chan struct{})
	)
	for _, a := range gen.Assignments[topic] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: a.ID, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			if err := r.SetOffset(a.Offset); err != nil {
				t.Errorf("partition %d: set offset: %v", a.ID, err)
				return
			}
			want := int64(0)
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("partition %d: read: %v", a.ID, err)
					}
					return
				}
				seq, _ := strconv.Atoi(string(m.Value))
				mu.Lock()
				if m.Offset != want && fault == nil {
					fault = fmt.Errorf("partition %d: offset %d arrived where %d was next", a.ID, m.Offset, want)
				}
				if prev, dup := seen[seq]; dup && fault == nil {
					fault = fmt.Errorf("record %d arrived twice: %v and partition %d offset %d", seq, prev, a.ID, m.Offset)
				}
				seen[seq] = consumed{partition: a.ID, offset: m.Offset}
				if len(seen) == n {
					close(done)
				}
				mu.Unlock()
				want = m.Offset + 1
			}
		}()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if fault != nil {
		t.Fatal(fault)
	}
	return seen
}

func partitionIDs(as []kafkago.PartitionAssignment) []int {
	ids := make([]int, 0, len(as))
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	sort.Ints(ids)
	return ids
}
