// Command stateful keeps a running balance per account in jobs.KeyState: the
// state lives as long as the account's key actor, is seen only by that
// account's jobs (one at a time, so no locks), and is reloaded from the store
// when the actor comes back after passivation (an idle key's actor is
// stopped, so memory follows active keys, not every key ever seen).
//
//	go run ./examples/stateful
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// DepositArgs adds Cents (negative: a withdrawal) to an account.
type DepositArgs struct {
	Account string `msgpack:"account"`
	Cents   int64  `msgpack:"cents"`
}

func (DepositArgs) Kind() string { return "deposit" }

func (a DepositArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Account} }

// Store is the durable balance store (a database in a real service).
type Store struct {
	mu       sync.Mutex
	balances map[string]int64
	loads    atomic.Int64
}

func (s *Store) Load(account string) int64 {
	s.loads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balances[account]
}

// Balance reads a balance without counting it as a load, for the check.
func (s *Store) Balance(account string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balances[account]
}

func (s *Store) Save(account string, cents int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.balances[account] = cents
}

// balance is the per-key state: loaded once per actor life.
type balance struct {
	loaded bool
	cents  int64
}

// DepositWorker applies deposits to the cached balance and writes it through.
type DepositWorker struct {
	jobs.WorkerDefaults[DepositArgs]
	Store *Store
	Done  atomic.Int64
}

func (w *DepositWorker) Work(ctx context.Context, job *jobs.Job[DepositArgs]) error {
	b := jobs.KeyState[balance](ctx)
	if !b.loaded { // a new actor for this account: after start, passivation or a rebalance
		b.cents, b.loaded = w.Store.Load(job.Args.Account), true
	}
	b.cents += job.Args.Cents
	w.Store.Save(job.Args.Account, b.cents)
	w.Done.Add(1)
	return nil
}

func main() {
	accounts := flag.Int("accounts", 5, "accounts")
	perRound := flag.Int("deposits", 20, "deposits per account per round")
	flag.Parse()
	if err := run(os.Stdout, *accounts, *perRound); err != nil {
		fmt.Fprintln(os.Stderr, "stateful:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, accounts, perRound int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	topic := "deposits-" + rand.Text()[:8]

	store := &Store{balances: map[string]int64{}}
	worker := &DepositWorker{Store: store}
	workers := jobs.NewWorkers()
	if err := jobs.AddWorker(workers, worker); err != nil {
		return err
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "ledger-" + topic, Topics: []string{topic}, Workers: workers,
		IdleTimeout:  200 * time.Millisecond, // passivate idle accounts quickly, for the demo
		CreateTopics: &jobs.TopicSpec{Partitions: 2, ReplicationFactor: 1},
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(context.Background())) }()
	if err := server.Start(ctx); err != nil {
		return err
	}
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()

	want := map[string]int64{}
	for round := 1; round <= 2; round++ {
		var params []jobs.EnqueueParams
		for i := range perRound {
			for a := range accounts {
				acct := fmt.Sprint("acct-", a)
				cents := int64(100 * (a + 1))
				if i%4 == 3 {
					cents = -cents // a withdrawal
				}
				want[acct] += cents
				params = append(params, jobs.EnqueueParams{Args: DepositArgs{Account: acct, Cents: cents}})
			}
		}
		if _, err := client.EnqueueMany(ctx, params); err != nil {
			return err
		}
		total := int64(round * perRound * accounts)
		if err := waitFor(ctx, func() bool { return worker.Done.Load() == total }); err != nil {
			return fmt.Errorf("round %d: %d of %d deposits ran: %w", round, worker.Done.Load(), total, err)
		}
		// Wait until every account's actor was passivated.
		if err := waitFor(ctx, func() bool { return liveKeys(server) == 0 }); err != nil {
			return fmt.Errorf("round %d: key actors were not passivated: %w", round, err)
		}
		fmt.Fprintf(out, "stateful: round %d: %d deposits applied; idle accounts passivated; store loads so far %d\n",
			round, total, store.loads.Load())
	}
	correct := 0
	for acct, cents := range want {
		if store.Balance(acct) == cents {
			correct++
		}
	}
	fmt.Fprintf(out, "stateful: accounts=%d deposits=%d balances_correct=%d loads=%d (one per account per actor life)\n",
		accounts, 2*perRound*accounts, correct, store.loads.Load())
	if correct != accounts {
		return fmt.Errorf("%d of %d balances wrong", accounts-correct, accounts)
	}
	return nil
}

func liveKeys(s *jobs.Server) int {
	n := 0
	for _, p := range s.Stats() {
		n += p.Keys
	}
	return n
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
