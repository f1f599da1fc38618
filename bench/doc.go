// Command bench is ordo's benchmark harness (go run ./bench). It measures ordo
// against baselines run in the same process on the same broker.
//
// It uses the public API of package jobs, and kafka-go directly only for the
// raw baselines (S1's raw fetch and naive Reader). Nothing imports it.
//
//	go run ./bench                      # all five scenarios, embedded broker
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./bench
//	go run ./bench -quick               # smaller sizes, same lines, < 1 minute
//	go run ./bench -only S1,S2 -cpuprofile cpu.out
//
// The broker is KAFKA_BROKERS if set ("kafka"), else an embedded one
// ("embedded"); every summary line and file names it. Each scenario
// enqueues its backlog once with jobs.Client.EnqueueMany into topics of its
// own, and consumes it with fresh consumer groups.
//
//   - S1 no-op throughput: raw kafka-go Fetch (one connection per partition,
//     record bytes only), a naive sequential kafka-go Reader that decodes
//     each envelope and its args, and ordo end to end. ratio = ordo/raw.
//   - S2 Karafka's Virtual Partitions scenario: 1 ms jobs at several
//     concurrency limits. ratio = jobs/s / (concurrency × 1,000).
//   - S3 Parallel Consumer's scenario: one partition, jobs of 0–5 ms,
//     concurrency 100, several key counts. ratio = seconds /
//     (jobs × 2.5 ms / min(keys, 100)).
//   - S4 memory: a jobs.Server in a child process (so neither the producer
//     nor an embedded broker counts) works with a slow handler through a
//     backlog for a fixed window; peak RSS (VmHWM) and peak HeapInuse. The
//     smaller backlog's topic is topped up to the larger one. ratio = RSS /
//     RSS at the smallest backlog.
//   - S5 revocation: two jobs.Servers of one group in this process; the
//     second starts while the first runs 100 ms jobs on every partition.
//     Revocation runs from the second Start until the first holds no
//     partition of its old generation (drained and committed), read from
//     Server.Stats; notice is when it saw the rebalance (Stats.Revoked).
//     A member learns of a rebalance at its next heartbeat, so the servers
//     heartbeat every 100 ms. ratio = revocation / (100 ms + the 100 ms
//     job); the median of three trials.
//
// Throughput and seconds are timed from the first job's start to the last
// job's end, so group joins are left out, for ordo and baselines alike.
// Sleeping jobs cannot beat Go's timer: the table gives each sleep
// distribution's timer floor, what the same sleeps take back to back on one
// goroutine without Kafka.
//
// Output: progress on stderr; summary lines (ratio last) and the markdown
// table on stdout; the table in <out>/<broker>.md and the charts of S2 and S3
// in <out>/<broker>-s2.png and <out>/<broker>-s3.png.
package main
