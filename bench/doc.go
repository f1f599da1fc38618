// Command bench is ordo's benchmark harness (go run ./bench). It measures ordo
// against baselines run in the same process on the same broker.
//
// It uses the public API of package jobs, package kafka (S7 writes its bad
// records with kafka.Producer), and kafka-go directly only for S1's raw
// baselines, for reading S7's dead-letter topic back and for S10's Writer
// baselines. Nothing imports it.
//
//	go run ./bench                      # every scenario, embedded broker
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./bench
//	go run ./bench -quick -out /tmp/q   # smaller sizes, same lines, a minute or two
//	go run ./bench -only S1,S2 -cpuprofile cpu.out
//	go run ./bench -backlog single      # every backlog one Enqueue per job
//
// The broker is KAFKA_BROKERS if set ("kafka"), else an embedded one
// ("embedded"); every summary line and file names it. Each scenario
// enqueues its backlog once into topics of its own, and consumes it with
// fresh consumer groups. -backlog chooses how: chunked (the default) writes
// it with jobs.Client.EnqueueMany in chunks of 5,000, so a record batch
// holds many jobs; single writes it with one jobs.Client.Enqueue per job
// from 16 clients called one call at a time, so every job is a record batch
// of its own, as a service that enqueues a job per request writes them (the
// calls one client gets while a produce request is in flight share the
// next, so concurrent calls on one client would share batches). S4 measures
// both shapes whatever -backlog says.
//
//   - S1 no-op throughput: raw kafka-go Fetch (one connection per partition,
//     record bytes only); fetch+decode, the same fetches also decoding each
//     envelope (jobs.DecodeEnvelope) and its args (msgpack.Unmarshal), the
//     floor for a job runner; a naive sequential kafka-go Reader that
//     decodes each job; and ordo end to end. Three trials, each running
//     raw, naive, then fetch+decode and ordo back to back (decode first in
//     odd trials, ordo first in even ones); ratio = ordo/decode of the
//     trial whose ratio is the median, and every figure of the line and
//     the table is that trial's. The table lists each trial's ratio.
//     Targets: ordo ≥ 0.8 × decode, ordo ≥ 2 × naive, and at most 8
//     allocations per job beyond kafka-go's own (raw's allocs/job) and the
//     args' own (what msgpack.Unmarshal of one NoopArgs allocates, counted
//     as testing.AllocsPerRun does). Allocations are the whole process's
//     (runtime.MemStats) over each run, divided by the jobs; the table
//     gives ordo − raw − args and ordo − args. The status reports' cost is
//     the median of nine pairs of ordo runs with and without them, back to
//     back, the first alternating. -quick: 10,000 jobs, one trial, one pair.
//   - S2 Karafka's Virtual Partitions scenario: 1 ms jobs at several
//     concurrency limits; the bound is concurrency × 1,000 jobs/s. Right
//     after ordo's run at each concurrency, reader_pool: the same jobs from
//     the same topic read by one kafka-go Reader in a fresh group (MinBytes
//     1, MaxBytes 1 MiB) feeding a pool of as many goroutines, each job's
//     envelope and args decoded, no key order, each partition committed up
//     to its first unfinished job (every 100 ms). Then the pool: as many
//     goroutines sleeping through the same jobs, no Kafka, the floor Go's
//     timers allow. ratio = ordo/reader_pool, the cost of keeping order.
//     Targets: c=14 ≥ 0.95; c=100 ≥ 0.9.
//   - S3 Parallel Consumer's scenario: one partition, jobs of 0–5 ms,
//     concurrency 100, several key counts. The bound is jobs × 2.5 ms /
//     min(keys, 100); the timer floor is measured in the same run. ratio =
//     seconds / (bound × floor), target ≤ 1.05. The blocking variant runs
//     the same jobs at 1,000 and 10,000 keys with a handler that sleeps in
//     nanosleep(2), which blocks its OS thread as cgo calls and file I/O do,
//     against plain goroutines, one per key running its jobs in order, each
//     job holding one of 100 slots, the same sleeps, no Kafka, run right
//     after ordo. ratio = ordo/goroutines, target ≤ 1.1. How many blocked
//     threads run at once is up to the Go scheduler handing their Ps on, and
//     on two CPUs it varies with the state of the process (from about two
//     to a few dozen), so only the same-process baseline is a fair measure;
//     the bound is printed in the table but not held to.
//   - S4 memory: a jobs.Server in a child process (so neither the producer
//     nor an embedded broker counts) works with a slow handler through a
//     backlog for a fixed window; peak RSS (VmHWM) and peak HeapInuse. The
//     smaller backlog's topic is topped up to the larger one. Both backlog
//     shapes: chunked ("bench S4 backlog=") and one record per batch
//     ("bench S4 one-record backlog=", checked by reading the first
//     megabyte of partition 0 back: as many batches as records). ratio =
//     RSS / RSS at the smallest backlog of the shape. Target ≤ 256 MB at
//     both, flat. Then S4 amplification: another child runs a server over
//     an empty topic of as many partitions until it holds them all and its
//     fetches have run a second, and reads its live heap (HeapAlloc right
//     after two runtime.GC calls, so that what sync.Pools cache, kafka-go's
//     decoding pages among it, is freed, not counted): the constant. It stops that server and runs one
//     over the largest one-record backlog for the window; at its end, the
//     live heap again and the records held (the sum of
//     PartitionStats.Buffered, read before and after the GC). ratio =
//     amplification = (live heap − constant) / (records held × the mean
//     key, value and headers bytes of a record). Targets ≤ 4, constant ≤ 32
//     MB. Records fetched but not yet counted in Buffered (an unread
//     response) are not in the denominator, so this errs high.
//   - S5 revocation: two jobs.Servers of one group in this process; the
//     second starts while the first runs 100 ms jobs on every partition.
//     Revocation runs from the second Start until the first holds no
//     partition of its old generation (drained and committed), read from
//     Server.Stats; notice is when it saw the rebalance (Stats.Revoked).
//     A member learns of a rebalance at its next heartbeat, so the servers
//     heartbeat every 100 ms. ratio = revocation / (100 ms + the 100 ms
//     job); the median of three trials. Then S5 cooperative: the same join
//     under cooperative rebalancing, on a topic with one key per slot (five
//     per partition), so every partition always runs jobs; the longest any
//     partition the first member keeps goes without finishing a job, from
//     the join to two job times past the hand-off (worst of three), against
//     2 × the job time; the same measurement under eager rebalancing is
//     printed beside it.
//   - S6 key churn: 2,000,000 distinct keys with one no-op job each, 12
//     partitions, concurrency 100, the server's defaults otherwise. The
//     jobs are streamed: the producer starts and the server (a child
//     process, as in S4) starts at once, so it consumes while the producer
//     still enqueues. The child reads its VmHWM, HeapInuse and the peak of
//     live key actors (the sum of Stats().Keys) when 200,000 and when
//     2,000,000 jobs are done. ratio = RSS at 2,000,000 / RSS at 200,000,
//     target ≤ 1.2. -quick uses 20,000 and 200,000.
//   - S7 bad input: 45,000 good 1 ms jobs over 500 keys, 5 partitions,
//     concurrency 100, with 4,500 undecodable records (10%) among them,
//     written with kafka.Producer: a value that is not a msgpack map, the
//     good jobs' kind header and a good job's key, so they reach key actors
//     that have good jobs and go to the dead-letter topic (the default,
//     <topic>.dlq, created first). Against it the same good jobs in a topic
//     without bad records. Runs alternate clean, bad, clean, bad; each side
//     keeps its better run, since a half-second run on a shared machine is
//     noisy. A bad run counts only if every good job ran once and the
//     dead-letter topic then holds exactly the bad records (values and
//     source positions), once each; otherwise the scenario fails. ratio =
//     good jobs/s with bad records / without, target ≥ 0.9. The log line of
//     each dead-lettered job is counted, not written.
//   - S8 rolling restart: 3 members (jobs.Servers in this process, c=20
//     each) share 24 partitions while 1 ms jobs over 500 keys stream in at
//     4,000 jobs/s; after a 3 s steady-state window each member in turn is
//     stopped (Stop, as on SIGTERM) and started again, under eager,
//     cooperative and cooperative+static rebalancing. Reported: partitions
//     revoked on the members not restarted (their "partition released"
//     logs), jobs that ran more than once (by job id, after every streamed
//     job ran), jobs in flight in the restarted member at each stop, and
//     the throughput of the partitions the restarted member did not hold,
//     from the stop until the group settled again, against the same
//     partitions' steady state (worst restart), with the longest gap in
//     their completions. Target, cooperative+static: 0 revoked on the
//     others, duplicates ≤ in flight, untouched ≥ 0.9. -quick streams 1,000
//     jobs/s with shorter windows.
//   - S9 scheduling: 100,000 jobs (WithRunAt) due within one 10 s window,
//     from 30 s after the enqueue began, over 1,000 keys on 12 partitions
//     (and a 12-partition compacted schedules topic), dispatched and run by
//     one server in this process (c=100). Dispatch lateness is each job
//     record's timestamp, set by the dispatcher's producer when it wrote
//     the job to its topic, minus the run-at in its args: p50, p99, max.
//     Then 1,000,000 jobs due in an hour are enqueued to another topic, and
//     a child process (a server alone) reads them into its dispatcher's
//     index; its peak RSS (VmHWM) once all are pending. Targets: p99 ≤ 200
//     ms, RSS ≤ 256 MB; ratio = p99 / 200 ms. -quick: 5,000 jobs in 2 s,
//     50,000 pending.
//   - S10 enqueue latency and throughput: jobs.Client.Enqueue, synchronous
//     (every in-sync replica acknowledges), one job per call, against a
//     kafka-go Writer (RequiredAcks RequireAll, murmur2 like ordo) writing
//     the records Enqueue would write (its own code, internal/enqueue.Prepare: the same key, envelope
//     and headers), built before the clock starts. Each side has a
//     3-partition topic of its own and 20 warm-up calls not counted.
//     Sequential: 2,000 calls one at a time, ordo and a Writer tuned for
//     latency (BatchSize 1, BatchTimeout 1 µs) taking turns call by call;
//     p50 and p99 of each; ratio = ordo p50 / writer p50, target ≤ 1.5.
//     Concurrent: 64 goroutines call until 50,000 jobs are enqueued, ordo,
//     then a Writer tuned for batching (BatchSize 1000, BatchTimeout 5 ms)
//     the same way; ratio = ordo jobs/s / writer jobs/s, target ≥ 0.9.
//     -quick uses 200 and 5,000.
//   - S11 per-key batches: 200,000 jobs over 1,000 keys on 12 partitions,
//     each a row of a bulk write that costs 1 ms per call plus 10 µs per
//     row (a sleep). A per-job Worker writes one row per call; a BatchWorker
//     (MaxBatch 100) writes the rows its key has queued in one call. Both
//     read the same topic, with MaxBuffered 10,000 so that each of a
//     partition's keys can queue a full batch, at concurrency 10 (the
//     scenario: a database takes a pool's worth of calls at once) and 100
//     (no target: it shows where the batch run meets the CPU). Every job's
//     offset is checked against the last its key finished, in both runs.
//     ratio = batch jobs/s / per-job jobs/s; target at c=10 ≥ 10. -quick:
//     10,000 jobs.
//   - S15 end-to-end latency: 1 ms jobs over 1,000 keys, 5 partitions,
//     c=100. First the capacity: ordo and reader_pool (as in S2) each
//     through the same 25,000-job backlog; the load is half the slower
//     one's rate. Then for ordo and for reader_pool in turn, on a topic of
//     its own: the consumer starts and runs a warm-up job, then jobs are
//     enqueued at the load for 30 s, one Enqueue per job, from 4 clients in
//     turn: every millisecond the calls due by then start, each on a
//     goroutine of its own, as a service's requests do, so that no call
//     waits for the ones before it (a fixed pool of callers capped the rate
//     at callers per round trip). Each job carries the time read right
//     before its Enqueue call, and the worker takes its start time from it.
//     p50, p99, max of enqueue to start; the Enqueue calls' own p50 and p99
//     are in the progress. The rate each side's jobs were really enqueued
//     at is printed (ordo_sent, reader_pool_sent): the producers share the
//     machine with the consumer and may fall short of the load, and then
//     the row is not met. ratio = ordo p99 / reader_pool p99;
//     targets ≤ 1.5 and ordo p50 ≤ 5 ms. -quick: 2,000 jobs and 3 s.
//
// Throughput and seconds are timed from the first job's start to the last
// job's end, so group joins are left out, for ordo and baselines alike.
// Sleeping jobs cannot beat Go's timer: the table gives each sleep
// distribution's timer floor, what the same sleeps take back to back on one
// goroutine without Kafka.
//
// Output: progress on stderr; summary lines (ratio last) and the markdown
// table on stdout; the table in <out>/<broker>.md and the charts in
// <out>/<broker>-s2.png, <out>/<broker>-s3.png and
// <out>/<broker>-s3-blocking.png. -out defaults to bench/results, where the
// committed results of full runs live; point a -quick run elsewhere.
package main
