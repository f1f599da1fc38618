// Command ordered shows how ordo orders jobs: a partitioner puts all jobs of
// an account on one partition, and virtual partitions run the accounts of
// one partition concurrently while each account's jobs run one at a time, in
// enqueue order.
//
// Here the jobs use the partition-key type (like Karafka's
// partition_key_type: :partition_key): the account only picks the partition
// and the records have no key, so the server derives its virtual partition
// from the ordo-partition-key header (Config.VirtualKey), and caps the
// virtual partitions per partition (Config.MaxVirtualPartitions, Karafka's
// max_partitions).
//
//	go run ./examples/ordered
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// TransferArgs moves money out of an account; one account's transfers must
// apply in the order they were made.
type TransferArgs struct {
	Account string `msgpack:"account"`
	Seq     int    `msgpack:"seq"`
}

func (TransferArgs) Kind() string { return "transfer" }

// Partitioning is the partitioner: the account picks the partition (murmur2,
// like the Java client), and the record carries no key.
func (a TransferArgs) Partitioning() jobs.Partitioning {
	return jobs.Partitioning{Value: a.Account, Type: jobs.KeyTypePartitionKey}
}

func main() {
	accounts := flag.Int("accounts", 12, "accounts")
	perAccount := flag.Int("transfers", 20, "transfers per account")
	maxVP := flag.Int("max-virtual-partitions", 4, "virtual partitions per partition (0: one per account)")
	flag.Parse()
	if err := run(os.Stdout, *accounts, *perAccount, *maxVP); err != nil {
		fmt.Fprintln(os.Stderr, "ordered:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, accounts, perAccount, maxVP int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	topic := "transfers-" + rand.Text()[:8]

	var (
		mu       sync.Mutex
		applied  = map[string][]int{}
		running  = map[string]bool{}
		overlaps int
		now      int
		peak     int
		done     = make(chan struct{})
	)
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[TransferArgs]) error {
		a := job.Args
		mu.Lock()
		if running[a.Account] {
			overlaps++
		}
		running[a.Account] = true
		now++
		peak = max(peak, now)
		mu.Unlock()
		time.Sleep(2 * time.Millisecond) // the transfer
		mu.Lock()
		defer mu.Unlock()
		running[a.Account] = false
		now--
		applied[a.Account] = append(applied[a.Account], a.Seq)
		if len(applied[a.Account]) == perAccount {
			if len(applied) == accounts && allDone(applied, perAccount) {
				close(done)
			}
		}
		return nil
	}))
	if err != nil {
		return err
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "ordered-" + topic, Topics: []string{topic}, Workers: workers,
		// The records have no key: the account travels in this header.
		VirtualKey:           jobs.HeaderVirtualKey(jobs.HeaderPartitionKey),
		MaxVirtualPartitions: maxVP,
		CreateTopics:         &jobs.TopicSpec{Partitions: 2, ReplicationFactor: 1},
		Logger:               slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
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
	var params []jobs.EnqueueParams
	for seq := range perAccount {
		for a := range accounts {
			params = append(params, jobs.EnqueueParams{Args: TransferArgs{Account: fmt.Sprint("acct-", a), Seq: seq}})
		}
	}
	if _, err := client.EnqueueMany(ctx, params); err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("transfers did not all run: %w", ctx.Err())
	}

	mu.Lock()
	defer mu.Unlock()
	inOrder := 0
	for _, acct := range slices.Sorted(maps.Keys(applied)) {
		if slices.IsSorted(applied[acct]) {
			inOrder++
		} else {
			fmt.Fprintf(out, "%s applied out of order: %v\n", acct, applied[acct])
		}
	}
	fmt.Fprintf(out, "ordered: accounts=%d transfers=%d in_order=%d overlapping_runs=%d peak_concurrency=%d max_virtual_partitions=%d\n",
		accounts, accounts*perAccount, inOrder, overlaps, peak, maxVP)
	if inOrder != accounts || overlaps != 0 {
		return fmt.Errorf("order broken: %d of %d accounts in order, %d overlapping runs", inOrder, accounts, overlaps)
	}
	return nil
}

func allDone(applied map[string][]int, perAccount int) bool {
	for _, seqs := range applied {
		if len(seqs) < perAccount {
			return false
		}
	}
	return true
}
