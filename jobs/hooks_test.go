package jobs_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/internal/serverhooks"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// serverHookLog keeps what one server's hooks reported.
type serverHookLog struct {
	mu        sync.Mutex
	committed []kafka.Offset
	released  []kafka.Offset // Topic and Partition only
}

func (l *serverHookLog) hooks() serverhooks.Hooks {
	return serverhooks.Hooks{
		Committed: func(o kafka.Offset) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.committed = append(l.committed, o)
		},
		Released: func(topic string, partition int) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.released = append(l.released, kafka.Offset{Topic: topic, Partition: partition})
		},
	}
}

// committedTo is the highest offset of topic the hooks saw committed, or -1.
func (l *serverHookLog) committedTo(topic string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	to := int64(-1)
	for _, o := range l.committed {
		if o.Topic == topic {
			to = max(to, o.Offset)
		}
	}
	return to
}

// TestEachServerReportsItsCommitsToTheHooksOfItsOwnStart: the chaos
// runner's ledgers learn a server's commits and releases from the hooks on
// its Start context. Two servers in one process, each started with hooks of
// its own, each report every commit up to the end of their topic and their
// partition's release to their own hooks, and nothing of the other's.
func TestEachServerReportsItsCommitsToTheHooksOfItsOwnStart(t *testing.T) {
	t.Parallel()
	const perServer = 20
	env := kafkatest.New(t)
	type member struct {
		topic string
		log   *serverHookLog
		srv   *jobs.Server
	}
	var members []*member
	for range 2 {
		m := &member{topic: env.Topic(t, 1), log: &serverHookLog{}}
		client := newClient(t, env, m.topic)
		for i := range perServer {
			if _, err := client.Enqueue(context.Background(), kindA{seqArgs{Key: "k", Seq: i}}); err != nil {
				t.Fatal(err)
			}
		}
		ws := jobs.NewWorkers()
		mustAdd(t, ws, jobs.WorkFunc(func(context.Context, *jobs.Job[kindA]) error { return nil }))
		srv, err := jobs.NewServer(serverConfig(t, env, m.topic, ws))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(serverhooks.WithHooks(context.Background(), m.log.hooks())); err != nil {
			t.Fatal(err)
		}
		m.srv = srv
		members = append(members, m)
	}
	for _, m := range members {
		kafkatest.WaitFor(t, 30*time.Second, "the hooks of "+m.topic+"'s server to see its commit of every job",
			func() bool { return m.log.committedTo(m.topic) == perServer })
		if err := m.srv.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range members {
		m.log.mu.Lock()
		committed, released := slices.Clone(m.log.committed), slices.Clone(m.log.released)
		m.log.mu.Unlock()
		for _, o := range committed {
			if o.Topic != m.topic {
				t.Errorf("the server of %s reported a commit of %s to its hooks: %v", m.topic, o.Topic, committed)
				break
			}
		}
		if want := []kafka.Offset{{Topic: m.topic, Partition: 0}}; !slices.Equal(released, want) {
			t.Errorf("the server of %s reported releases %v, want %v", m.topic, released, want)
		}
	}
}
