// Command orders is ordo's demo: it enqueues order updates for many users,
// processes them with one process-wide concurrency limit and strict order per
// user, and checks from what actually ran that nothing was lost, duplicated
// or reordered.
//
//	go run ./examples/orders            # embedded broker
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/orders
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
)

// OrderUpdate is one job: an update to a user's order.
type OrderUpdate struct {
	UserID string `msgpack:"user_id"`
	Seq    int    `msgpack:"seq"` // per user, in enqueue order
	Status string `msgpack:"status"`
}

// Kind names the job type.
func (OrderUpdate) Kind() string { return "order_update" }

// Partitioning sends all of a user's updates to one partition with the user
// id as key, so they run one at a time in enqueue order.
func (u OrderUpdate) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: u.UserID} }

func main() {
	jobsN := flag.Int("jobs", 20_000, "order updates to enqueue")
	users := flag.Int("users", 500, "distinct users")
	partitions := flag.Int("partitions", 8, "partitions of the demo topic")
	concurrency := flag.Int("concurrency", 100, "jobs running at once")
	work := flag.Duration("work", time.Millisecond, "time each job takes")
	flag.Parse()
	if err := run(*jobsN, *users, *partitions, *concurrency, *work); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(n, users, partitions, concurrency int, work time.Duration) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	brokers, stop, err := brokers()
	if err != nil {
		return err
	}
	defer stop()
	suffix := randomSuffix()
	topic, group := "orders-"+suffix, "orders-demo-"+suffix
	admin := kafka.NewAdmin(brokers)
	if err := admin.CreateTopics(ctx, kafka.Topic{Name: topic, Partitions: partitions}); err != nil {
		return err
	}
	defer func() { _ = admin.DeleteTopics(context.Background(), topic) }()

	fmt.Printf("demo: enqueueing %d order updates for %d users to %s (%d partitions)\n", n, users, topic, partitions)
	if err := enqueue(ctx, brokers, topic, n, users); err != nil {
		return err
	}

	ledger := newLedger()
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[OrderUpdate]) error {
		ledger.start(job.Args)
		time.Sleep(work)
		ledger.end(job.Args)
		return nil
	}))
	if err != nil {
		return err
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers:     brokers,
		Group:       group,
		Topics:      []string{topic},
		Workers:     workers,
		Concurrency: concurrency,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	began := time.Now()
	if err := server.Start(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for ledger.done.Load() < int64(n) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up after %v with %d of %d jobs done", time.Since(began), ledger.done.Load(), n)
		case <-tick.C:
			progress(server, ledger, n, began)
		}
	}
	elapsed := time.Since(began)
	progress(server, ledger, n, began)
	fmt.Println()
	if err := server.Stop(ctx); err != nil {
		return err
	}
	lost, violations, dups := ledger.verify(n, users)
	fmt.Printf("demo: jobs=%d users=%d lost=%d order_violations=%d duplicates=%d jobs/s=%.0f\n",
		n, users, lost, violations, dups, float64(n)/elapsed.Seconds())
	if lost+violations > 0 {
		return fmt.Errorf("invariants broken: lost=%d order_violations=%d", lost, violations)
	}
	return nil
}

func brokers() ([]string, func(), error) {
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		return strings.Split(v, ","), func() {}, nil
	}
	b, err := kafka.StartEmbeddedBroker()
	if err != nil {
		return nil, nil, err
	}
	return b.Addrs(), b.Close, nil
}

func enqueue(ctx context.Context, brokers []string, topic string, n, users int) error {
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer client.Close()
	seq := make([]int, users)
	params := make([]jobs.EnqueueParams, 0, n)
	for i := range n {
		u := i % users
		params = append(params, jobs.EnqueueParams{Args: OrderUpdate{UserID: fmt.Sprintf("user-%d", u), Seq: seq[u], Status: "updated"}})
		seq[u]++
	}
	_, err = client.EnqueueMany(ctx, params)
	return err
}

func progress(s *jobs.Server, l *ledger, n int, began time.Time) {
	var inflight, buffered int
	for _, p := range s.Stats() {
		inflight += p.InFlight
		buffered += p.Buffered
	}
	done := l.done.Load()
	fmt.Printf("\rdemo: %6d/%d done  %7.0f jobs/s  in flight %3d  buffered %5d  lag %6d",
		done, n, float64(done)/time.Since(began).Seconds(), inflight, buffered, int64(n)-done)
}

// ledger records what actually ran, per user.
type ledger struct {
	mu      sync.Mutex
	seqs    map[string][]int
	running map[string]bool
	overlap int
	done    atomic.Int64
}

func newLedger() *ledger { return &ledger{seqs: map[string][]int{}, running: map[string]bool{}} }

func (l *ledger) start(u OrderUpdate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[u.UserID] {
		l.overlap++
	}
	l.running[u.UserID] = true
	l.seqs[u.UserID] = append(l.seqs[u.UserID], u.Seq)
}

func (l *ledger) end(u OrderUpdate) {
	l.mu.Lock()
	l.running[u.UserID] = false
	l.mu.Unlock()
	l.done.Add(1)
}

// verify counts jobs never run, runs out of enqueue order per user (and
// overlapping runs of one user), and runs beyond the first.
func (l *ledger) verify(n, users int) (lost, violations, duplicates int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	violations = l.overlap
	ran := 0
	for _, seqs := range l.seqs {
		seen := map[int]bool{}
		for i, s := range seqs {
			if seen[s] {
				duplicates++
				continue
			}
			seen[s] = true
			ran++
			if i > 0 && s < seqs[i-1] {
				violations++
			}
		}
	}
	return n - ran, violations, duplicates
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
