// Package jobs runs background jobs from Kafka inside a Go service, one job
// at a time per key, in enqueue order, and many keys at once.
//
// # Define a job
//
// A job's args are a plain struct that names its kind; its worker does the
// work:
//
//	type ChargeArgs struct {
//		Account string `msgpack:"account"`
//		Cents   int64  `msgpack:"cents"`
//	}
//
//	func (ChargeArgs) Kind() string { return "charge" }
//
//	// All charges of one account run one at a time, in order.
//	func (a ChargeArgs) Partitioning() jobs.Partitioning {
//		return jobs.Partitioning{Value: a.Account}
//	}
//
//	type ChargeWorker struct {
//		jobs.WorkerDefaults[ChargeArgs] // retry, timeout, long-running: defaults
//	}
//
//	func (w *ChargeWorker) Work(ctx context.Context, job *jobs.Job[ChargeArgs]) error {
//		return charge(ctx, job.Args.Account, job.Args.Cents)
//	}
//
// # Enqueue
//
// A Client writes each job as one Kafka message whose value is a msgpack
// envelope (kind, id, args, enqueued-at, attempt, metadata) and whose kind
// also travels in a header:
//
//	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: "jobs"})
//	info, err := client.Enqueue(ctx, ChargeArgs{Account: "acct-1", Cents: 500})
//
// Partitioning decides where a job goes, like Karafka's partitioner and
// partition_key_type: with KeyTypeKey (the default) the value becomes the
// message key; with KeyTypePartitionKey it only picks the partition (murmur2,
// as the Java client does) and the message has no key. Options override it
// per call (WithKey, WithPartitionKey, WithTopic, WithHeaders). EnqueueMany
// sends one batch; EnqueueAsync reports each failure to a callback.
//
// # Later
//
// WithRunAt and WithDelay run a job later: it waits in the topic's schedules
// topic (topic + DefaultScheduleSuffix, compacted) until a Server's
// dispatcher (Config.Schedules) sends it to the topic when due, where it takes
// its place in its key's order at that point. Dispatch is at least once, with
// the same job id. Client.Cancel tombstones a pending job and says whether it
// was in time.
//
//	info, err := client.Enqueue(ctx, ReminderArgs{User: "u-1"}, jobs.WithDelay(24*time.Hour))
//	outcome, err := client.Cancel(ctx, info.ID) // jobs.Cancelled, CancelTooLate or CancelUnconfirmed
//
// # Run
//
// A Server consumes the topics as a consumer group member:
//
//	workers := jobs.NewWorkers()
//	jobs.AddWorker(workers, &ChargeWorker{})
//	server, err := jobs.NewServer(jobs.Config{
//		Brokers: brokers, Group: "billing", Topics: []string{"jobs"}, Workers: workers,
//	})
//	err = server.Start(ctx)
//	defer server.Stop(context.Background())
//
// Every assigned partition is a supervisor actor and every key a child actor
// (see package actors): jobs of one key run one at a time in offset order;
// different keys share a pool of Config.Concurrency goroutines. Offsets are
// committed only below jobs that finished.
//
// One executor owns each job's life: it decodes the record, finds the
// worker, runs it under its Timeout, turns a panic into an error, asks
// package supervision what follows a failure, and tells the runtime: done,
// retry after a delay, or hold the key while the dead letter is written.
// jobstest runs workers through the same executor.
//
// # Failures
//
// A job that returns an error or panics runs again after a backoff (1 s
// doubling to 30 s by default) while its key waits and other keys go on. After
// Config.MaxAttempts runs (default 4), at once for Permanent errors, and for
// values that do not decode or kinds without a worker, the record goes to the
// dead-letter topic (default: the first topic + ".dlq") with headers naming
// its source topic, partition, offset, group, attempts, kind and the error.
// One writer per server batches the dead letters; the job's key waits (without
// a concurrency slot) until the broker has acknowledged its dead letter, and
// only then is the job committed. A write that fails is retried with a
// back-off, logged and counted, never dropped, and holds up only the keys
// whose jobs wait for it.
//
// # Reading dead letters
//
// A dead letter is the job's record as it was read (same key, same value,
// same headers) plus headers saying where it came from and why it died:
// HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset,
// HeaderSourceGroup, HeaderSourceAttempts, HeaderSourceKind and HeaderError
// (the reason). Three ways to read them:
//
//   - The ordo command: `ordo dlq list --topic jobs.dlq` lists them,
//     `ordo dlq show` shows one with its headers, and `ordo dlq replay`
//     enqueues them again to their source topic; package dashboard does the
//     same in a browser.
//   - A Server on the dead-letter topic, with workers for the kinds to
//     handle, as below: Job.Headers carries the dead-letter headers, and a
//     job that fails there too goes on to the server's own dead-letter
//     topic (by default "jobs.dlq.dlq"), never back. The server commits
//     the markers a replay appends (below) without running them.
//   - Any Kafka consumer: the value is the job's msgpack envelope. Skip
//     records with an empty value: they are the markers `ordo dlq replay`
//     appends (HeaderReplayOf names the dead letter replayed), not jobs.
//
// A Server that audits dead letters (examples/deadletters does this end to
// end):
//
//	audit, err := jobs.NewServer(jobs.Config{
//		Brokers: brokers, Group: "dlq-audit", Topics: []string{"jobs.dlq"}, Workers: auditors,
//	})
//
// # Rebalances, shutdown, long jobs
//
// When partitions are revoked, each key finishes only the job it is running;
// what it had buffered is dropped and runs on the partition's next owner,
// which starts at the committed offset. Stop does the same for the whole
// process, bounded by Config.ShutdownTimeout. Workers whose LongRunning
// returns true (or topics in Config.LongRunningTopics) may run longer than the
// group's rebalance timeout: a revocation does not wait for them, cancels
// their context after Config.LongRunningGrace, and leaves them uncommitted;
// such a job can call Revoked(ctx) to stop early.
//
// # Status reports
//
// Every Config.StatusInterval (5 s) a server publishes a report of what it
// holds and did (partitions, offsets, lag, counts per kind, its last errors,
// never job args) to the compacted topic Config.StatusTopic
// (__ordo_status), which `ordo status` and package dashboard read; Stop
// removes it. Config.DisableStatus turns the reports off.
//
// # Middleware
//
// A Middleware wraps the jobs of each enqueue call (its Enqueue phase) and
// each run (its Work phase), one value for both: Config.Middleware and
// ClientConfig.Middleware, first entry outermost, then a worker's own
// Middleware() in the Work phase. It sees a job as a RawJob (kind, id,
// headers, msgpack args) and may change the headers and args: what the last
// Enqueue phase leaves is what the record carries, and what the last Work
// phase leaves is what the worker decodes. An Enqueue-phase error fails the
// enqueue; a Work-phase error is the run's, retried and dead-lettered like
// Work's.
//
// # Per-key state
//
// KeyState gives a worker state that lives as long as its key's actor, seen
// only by that key's jobs, one at a time. A key's actor is passivated when it
// has been idle for Config.IdleTimeout, or earlier when the process holds
// Config.MaxIdleKeys idle keys (least recently used first), so state must be
// reloadable.
package jobs
