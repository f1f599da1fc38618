package kafka_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// TestOldGenerationCanNeitherCommitNorFetch guards against kafka-go #1308 (a
// commit from an old generation rolling an offset back) and #1398 (records
// fetched before a rebalance delivered after it): once a generation ended,
// its session's commits are refused and its claims return no more records,
// and the next generation starts at the committed offset.
func TestOldGenerationCanNeitherCommitNorFetch(t *testing.T) {
	t.Parallel()
	env := kafkatest.New(t)
	topic, group := env.Topic(t, 2), env.Group(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	produceNumbered(ctx, t, env.Brokers, topic, 200)

	cfg := kafka.ConsumerConfig{
		Brokers: env.Brokers, Group: group, Topics: []string{topic},
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	sessionsA := runMember(ctx, t, cfg)
	old := <-sessionsA
	var claim *kafka.Claim
	for _, c := range old.Claims() {
		if c.Partition == 0 {
			claim = c
		}
	}
	recs, _, err := claim.Fetch(ctx, nil, 10)
	if err != nil || len(recs) == 0 {
		t.Fatalf("first fetch: %d records, err %v", len(recs), err)
	}
	if err := old.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 10}); err != nil {
		t.Fatal(err)
	}
	// Lower than what this session committed: never sent.
	if err := old.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 4}); err != nil {
		t.Fatal(err)
	}
	assertCommitted(ctx, t, env, group, topic, 0, 10)

	joined := runMember(ctx, t, cfg) // a second member: a rebalance
	renewed := <-sessionsA
	other := <-joined
	if renewed.GenerationID() <= old.GenerationID() || other.GenerationID() != renewed.GenerationID() {
		t.Fatalf("generations %d → %d / %d; want one newer generation", old.GenerationID(), renewed.GenerationID(), other.GenerationID())
	}

	err = old.Commit(ctx, kafka.Offset{Topic: topic, Partition: 0, Offset: 2})
	if !errors.Is(err, kafka.ErrStaleGeneration) {
		t.Fatalf("commit from the old generation returned %v, want ErrStaleGeneration", err)
	}
	if recs, _, err := claim.Fetch(ctx, nil, 10); !errors.Is(err, kafka.ErrRevoked) || len(recs) > 0 {
		t.Fatalf("fetch from the old generation returned %d records, err %v; want none and ErrRevoked", len(recs), err)
	}
	assertCommitted(ctx, t, env, group, topic, 0, 10)
	for _, s := range []*kafka.Session{renewed, other} {
		for _, c := range s.Claims() {
			if c.Partition == 0 && c.Start != 10 {
				t.Errorf("new generation starts partition 0 at %d, want the committed 10", c.Start)
			}
		}
	}
}

// runMember runs a group member whose sessions are sent on the returned
// channel; each session is held until its generation ends.
func runMember(ctx context.Context, t *testing.T, cfg kafka.ConsumerConfig) chan *kafka.Session {
	t.Helper()
	c, err := kafka.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sessions := make(chan *kafka.Session, 8)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, func(s *kafka.Session) {
			sessions <- s
			<-s.Done()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return sessions
}

func assertCommitted(ctx context.Context, t *testing.T, env *kafkatest.Env, group, topic string, partition int, want int64) {
	t.Helper()
	got, err := env.Admin.CommittedOffsets(ctx, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	if got[partition] != want {
		t.Fatalf("committed offset of partition %d is %d, want %d", partition, got[partition], want)
	}
}
