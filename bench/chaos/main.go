// Command chaos proves that ordo loses no job and keeps order per key while
// its worker processes are killed and its broker restarts:
//
//	go run ./bench/chaos -jobs 100000 -procs 3 -duration 60s
//
// It creates a 12-partition topic, enqueues the jobs over 5,000 keys, each
// carrying its key's sequence number, and runs -procs worker processes (this
// program again, with -worker) in one consumer group. Each worker records
// every execution in a ledger file that survives SIGKILL. Every few seconds
// the runner kills a random worker, with SIGKILL or sometimes SIGTERM, and
// starts a replacement; against a real broker (KAFKA_BROKERS) it also
// restarts the broker once, keeping its data. Against the three-broker
// cluster of scripts/kafka-cluster.sh (-cluster), it instead kills (SIGKILL)
// the broker that leads the most partitions of the topic, and later the
// active controller, and starts each again after -broker-down. Workers log
// every commit the broker accepted. When the group has committed everything,
// it checks the ledgers (see check) and prints one line:
//
//	chaos: jobs=100000 kills=… lost=0 order_violations=0 overlaps=0 duplicates=… bound=… loose_bound=… log_duplicates=… enqueue_retries=…
//
// with, on the cluster, broker_faults=… leader_failover_ms=p50:…,max:…(n=…).
//
// While it runs it prints a progress line to stderr every few seconds: the
// phase, jobs enqueued, records the group has committed, faults so far.
//
// It exits 1 when an invariant fails, 2 when the run itself failed. Without
// KAFKA_BROKERS the broker is embedded in this process and the workers
// connect to it over loopback.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/ordo-go/ordo/internal/serverhooks"
	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

type chaosArgs struct {
	Key string `msgpack:"key"`
	Seq int    `msgpack:"seq"`
}

func (chaosArgs) Kind() string                      { return "chaos" }
func (a chaosArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Key} }

func keyName(i int) string { return "key-" + strconv.Itoa(i) }

type options struct {
	jobs, keys, procs, partitions int
	duration, killEvery, work     time.Duration
	drainTimeout                  time.Duration
	kafkaScript                   string
	restartBroker                 bool
	cluster                       bool
	clusterScript                 string
	brokerDown                    time.Duration
	replication                   int
	keep                          bool
	verbose                       bool
	seed                          uint64

	// worker mode
	worker       bool
	brokers      string
	topic, group string
	ledgerPath   string
	proc         string
	concurrency  int
	rebalance    string
	workerLog    string
}

func main() {
	var o options
	flag.IntVar(&o.jobs, "jobs", 100_000, "jobs to enqueue")
	flag.IntVar(&o.keys, "keys", 5_000, "keys the jobs are spread over")
	flag.IntVar(&o.procs, "procs", 3, "worker processes")
	flag.IntVar(&o.partitions, "partitions", 12, "partitions of the topic")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long jobs are enqueued and workers killed")
	flag.DurationVar(&o.killEvery, "kill-every", 4*time.Second, "mean time between kills")
	flag.DurationVar(&o.work, "work", 20*time.Millisecond, "time each job works")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Minute, "how long to wait for the group to commit everything")
	flag.StringVar(&o.kafkaScript, "kafka-script", "scripts/kafka.sh", "script whose 'restart' restarts the real broker")
	flag.BoolVar(&o.restartBroker, "restart-broker", true, "with KAFKA_BROKERS, restart the broker once mid-run")
	flag.BoolVar(&o.cluster, "cluster", false, "KAFKA_BROKERS is the cluster of -cluster-script: kill the busiest leader, later the active controller")
	flag.StringVar(&o.clusterScript, "cluster-script", "scripts/kafka-cluster.sh", "script whose kill, start and controller commands fault the cluster")
	flag.DurationVar(&o.brokerDown, "broker-down", 10*time.Second, "with -cluster, how long a killed broker stays down")
	flag.IntVar(&o.replication, "replication", 0, "replication factor of the topics (default: 3 with -cluster, else 1)")
	flag.BoolVar(&o.keep, "keep", false, "keep the ledgers and worker logs (kept anyway on failure)")
	flag.BoolVar(&o.verbose, "v", false, "log faults and progress to stderr")
	flag.Uint64Var(&o.seed, "seed", 0, "random seed for the faults (default: random)")
	flag.BoolVar(&o.worker, "worker", false, "internal: run as a worker process")
	flag.StringVar(&o.brokers, "brokers", "", "internal: worker's bootstrap brokers")
	flag.StringVar(&o.topic, "topic", "", "internal: worker's topic")
	flag.StringVar(&o.group, "group", "", "internal: worker's group")
	flag.StringVar(&o.ledgerPath, "ledger", "", "internal: worker's ledger file")
	flag.StringVar(&o.proc, "proc", "", "internal: worker's name")
	flag.IntVar(&o.concurrency, "concurrency", 64, "jobs each worker runs at once")
	flag.StringVar(&o.rebalance, "rebalance", "eager", "the group's rebalance protocol: eager or cooperative")
	flag.StringVar(&o.workerLog, "worker-log", "warn", "the workers' log level (debug, info, warn, error); their logs are kept with the ledgers")
	flag.Parse()
	if o.worker {
		if err := runWorker(o); err != nil {
			fmt.Fprintf(os.Stderr, "chaos worker %s: %v\n", o.proc, err)
			os.Exit(2)
		}
		return
	}
	if o.replication == 0 {
		o.replication = 1
		if o.cluster {
			o.replication = 3
		}
	}
	v, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		os.Exit(2)
	}
	fmt.Println(v)
	if !v.ok() {
		for _, ex := range v.examples {
			fmt.Fprintln(os.Stderr, "chaos:  ", ex)
		}
		os.Exit(1)
	}
}

// runWorker is one worker process: a jobs.Server whose every execution goes
// to the ledger. SIGTERM stops it gracefully; SIGKILL just ends it.
func runWorker(o options) error {
	led, err := openLedger(o.ledgerPath)
	if err != nil {
		return err
	}
	// The ledger's commits and releases tell the checker which finished
	// jobs a crash may run again: those no commit covered.
	hooks := serverhooks.Hooks{
		Committed: func(off kafka.Offset) {
			if off.Topic != o.topic {
				return
			}
			if err := led.commit(off.Partition, off.Offset, time.Now().UnixNano(), off.Metadata); err != nil {
				fmt.Fprintf(os.Stderr, "chaos worker %s: ledger: %v\n", o.proc, err)
			}
		},
		Released: func(topic string, partition int) {
			if topic != o.topic {
				return
			}
			if err := led.release(partition, time.Now().UnixNano()); err != nil {
				fmt.Fprintf(os.Stderr, "chaos worker %s: ledger: %v\n", o.proc, err)
			}
		},
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.workerLog)); err != nil {
		return fmt.Errorf("-worker-log: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ws := jobs.NewWorkers()
	if err := jobs.AddWorker(ws, jobs.WorkFunc(func(ctx context.Context, j *jobs.Job[chaosArgs]) error {
		start := time.Now().UnixNano()
		if err := led.start(j.Args.Key, j.Args.Seq, j.Partition, j.Offset, start); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		outcome := "ok"
		var werr error
		select {
		case <-time.After(o.work):
		case <-ctx.Done():
			outcome, werr = "cancelled", ctx.Err()
		}
		if err := led.end(j.Args.Key, j.Args.Seq, j.Partition, j.Offset, start, time.Now().UnixNano(), outcome); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		return werr
	})); err != nil {
		return err
	}
	rebalance := jobs.RebalanceEager
	switch o.rebalance {
	case "eager":
	case "cooperative":
		rebalance = jobs.RebalanceCooperative
	default:
		return fmt.Errorf("-rebalance %q: want eager or cooperative", o.rebalance)
	}
	srv, err := jobs.NewServer(jobs.Config{
		Brokers: strings.Split(o.brokers, ","), Group: o.group, Topics: []string{o.topic}, Workers: ws,
		CreateTopics: &jobs.TopicSpec{Partitions: 1, ReplicationFactor: o.replication}, // the dead-letter topic
		Schedules:    jobs.SchedulesOff,                                                // it enqueues no delayed jobs
		Concurrency:  o.concurrency,
		Rebalance:    rebalance,
		// A killed member is noticed after SessionTimeout. The short
		// RebalanceTimeout bounds how long the coordinator waits for
		// members that will never rejoin; jobs here take milliseconds, so
		// a revocation drain needs far less.
		SessionTimeout:    sessionTimeout,
		HeartbeatInterval: 500 * time.Millisecond,
		RebalanceTimeout:  rebalanceTimeout,
		ShutdownTimeout:   10 * time.Second,
		Logger:            logger,
	})
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if err := srv.Start(serverhooks.WithHooks(context.Background(), hooks)); err != nil {
		return err
	}
	<-sigs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Stop(ctx)
	return errors.Join(err, led.close())
}

// Worker group timings. settleTime bounds how long after a fault its
// rebalances go on: a dead member is noticed within a session timeout, the
// others rejoin within a rebalance timeout, and the replacement's join
// causes one more rebalance.
const (
	sessionTimeout   = 6 * time.Second
	rebalanceTimeout = 5 * time.Second
	settleTime       = sessionTimeout + 2*rebalanceTimeout + 2*time.Second
	// brokerFenceTime is how long a KRaft controller waits before it
	// fences a broker that stopped heartbeating and moves its
	// leaderships and group coordinators away: Kafka's default
	// broker.session.timeout.ms, which the cluster keeps.
	brokerFenceTime = 9 * time.Second
	// recoverTime bounds how long after a broker fault's end a member's
	// commits can still fail: it finds the coordinator again, or the
	// group notices it gone and rebalances without it.
	recoverTime = sessionTimeout + rebalanceTimeout
)

// worker is a running worker process.
type worker struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

type runner struct {
	o       options
	self    string
	dir     string
	brokers []string
	admin   *kafka.Admin
	topic   string
	group   string
	rng     *mrand.Rand

	mu      sync.Mutex
	workers []*worker
	all     []string // every worker name ever started
	next    int
	phase   string // for the progress lines

	// For the progress lines only; the check reads the ledgers and events.
	enqueued, kills, brokerFaults atomic.Int64
}

func (r *runner) logf(format string, args ...any) {
	if r.o.verbose {
		fmt.Fprintf(os.Stderr, "chaos: %s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

func run(o options) (*verdict, error) {
	if o.jobs <= 0 || o.keys <= 0 || o.procs <= 0 || o.partitions <= 0 {
		return nil, errors.New("-jobs, -keys, -procs and -partitions must be positive")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	seed := o.seed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	r := &runner{o: o, self: self, rng: mrand.New(mrand.NewPCG(seed, seed))}
	realBroker := false
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		r.brokers, realBroker = strings.Split(v, ","), true
	} else if o.cluster {
		return nil, errors.New("-cluster needs KAFKA_BROKERS: the cluster's bootstrap list (scripts/kafka-cluster.sh brokers)")
	} else {
		b, err := kafkaembed.Start()
		if err != nil {
			return nil, err
		}
		defer b.Close()
		r.brokers = b.Addrs()
	}
	r.admin = kafka.NewAdmin(r.brokers)
	suffix := randomSuffix()
	r.topic, r.group = "chaos-"+suffix, "chaos-"+suffix
	if r.dir, err = os.MkdirTemp("", "ordo-chaos-"); err != nil {
		return nil, err
	}
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = r.admin.CreateTopics(cctx, kafka.Topic{Name: r.topic, Partitions: o.partitions, ReplicationFactor: o.replication})
	cancel()
	if err != nil {
		return nil, err
	}
	if realBroker {
		defer func() {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_ = r.admin.DeleteTopics(dctx, r.topic)
		}()
	}
	r.logf("seed %d, topic %s (replication %d), %s rebalancing, ledgers in %s", seed, r.topic, o.replication, r.o.rebalance, r.dir)

	for range o.procs {
		if err := r.startWorker(); err != nil {
			return nil, err
		}
	}
	defer r.stopAll()

	type enqueueResult struct {
		resent int
		err    error
	}
	enqueued := make(chan enqueueResult, 1)
	go func() {
		resent, err := r.enqueue(ctx)
		enqueued <- enqueueResult{resent, err}
	}()

	var events []event
	began := time.Now()
	r.setPhase("faults")
	stopProgress := r.reportProgress(ctx, began, progressEvery)
	defer stopProgress()
	type brokerResult struct {
		events []event
		err    error
	}
	brokerDone := make(chan brokerResult, 1)
	go func() {
		evs, err := r.faultBrokers(ctx, began, realBroker)
		brokerDone <- brokerResult{evs, err}
	}()
	end := began.Add(o.duration)
	committed := map[int]int64{}
	for {
		wait := r.killWait()
		if time.Until(end) < wait {
			break
		}
		time.Sleep(wait)
		if c, err := r.committed(ctx); err == nil {
			committed = c // else the last offsets read stand
		}
		events = append(events, r.kill(committed))
		if err := r.startWorker(); err != nil {
			return nil, err
		}
	}
	time.Sleep(time.Until(end))
	br := <-brokerDone
	if br.err != nil {
		return nil, br.err
	}
	events = append(events, br.events...)
	r.setPhase("enqueue")
	enq := <-enqueued
	if enq.err != nil {
		return nil, enq.err
	}
	r.logf("faults over after %v; waiting for the group to drain", time.Since(began).Round(time.Millisecond))
	r.setPhase("drain")
	if err := r.waitDrained(ctx); err != nil {
		r.o.keep = true
		return nil, fmt.Errorf("%w (ledgers and logs kept in %s)", err, r.dir)
	}
	stopProgress()
	r.stopAll()

	var execs []*execution
	var commits []commit
	var releases []release
	for _, name := range r.all {
		es, cs, rs, err := readLedger(filepath.Join(r.dir, "ledger-"+name), name)
		if err != nil {
			return nil, err
		}
		execs = append(execs, es...)
		commits = append(commits, cs...)
		releases = append(releases, rs...)
	}
	v := check(o.jobs, o.keys, execs, commits, releases, events, enq.resent)
	if !v.ok() || o.keep {
		var b strings.Builder
		for _, e := range events {
			fmt.Fprintf(&b, "%s proc=%s node=%d at=%d died=%d settled=%d recovered=%d\n", e.what, e.proc, e.node, e.at, e.died, e.settled, e.recovered)
		}
		_ = os.WriteFile(filepath.Join(r.dir, "events"), []byte(b.String()), 0o644)
		fmt.Fprintf(os.Stderr, "chaos: ledgers, worker logs and the faults (events) are in %s\n", r.dir)
	} else {
		_ = os.RemoveAll(r.dir)
	}
	return v, nil
}

func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *runner) startWorker() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	name := "p" + strconv.Itoa(r.next)
	logf, err := os.Create(filepath.Join(r.dir, "worker-"+name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(r.self, "-worker", "-proc", name,
		"-brokers", strings.Join(r.brokers, ","), "-topic", r.topic, "-group", r.group,
		"-ledger", filepath.Join(r.dir, "ledger-"+name),
		"-work", r.o.work.String(), "-concurrency", strconv.Itoa(r.o.concurrency), "-rebalance", r.o.rebalance,
		"-replication", strconv.Itoa(r.o.replication), "-worker-log", r.o.workerLog)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start worker %s: %w", name, err)
	}
	w := &worker{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(w.exited)
	}()
	r.workers = append(r.workers, w)
	r.all = append(r.all, name)
	r.logf("started worker %s (pid %d)", name, cmd.Process.Pid)
	return nil
}

// kill sends a random worker SIGKILL, or SIGTERM one time in four, and waits
// for it to exit.
func (r *runner) kill(committed map[int]int64) event {
	r.mu.Lock()
	i := r.rng.IntN(len(r.workers))
	w := r.workers[i]
	r.workers = append(r.workers[:i], r.workers[i+1:]...)
	r.mu.Unlock()
	sig, what := syscall.SIGKILL, "SIGKILL"
	if r.rng.IntN(4) == 0 {
		sig, what = syscall.SIGTERM, "SIGTERM"
	}
	ev := event{what: what, proc: w.name, at: time.Now().UnixNano(), committed: committed}
	_ = w.cmd.Process.Signal(sig)
	select {
	case <-w.exited:
	case <-time.After(40 * time.Second):
		r.logf("worker %s ignored SIGTERM for 40s; killing it", w.name)
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
	ev.died = time.Now().UnixNano()
	ev.settled = ev.died + int64(settleTime)
	r.kills.Add(1)
	r.logf("%s worker %s: exited after %v", what, w.name, time.Duration(ev.died-ev.at).Round(time.Millisecond))
	return ev
}

// killWait is a random time to the next worker kill: -kill-every ± half.
func (r *runner) killWait() time.Duration {
	return time.Duration(float64(r.o.killEvery) * (0.5 + r.rng.Float64()))
}

// faultBrokers causes the run's broker faults, while workers are killed
// beside it, and returns them. On the cluster it kills the busiest leader an
// eighth into the run and starts it again -broker-down later; once that
// broker serves again, and no earlier than two fifths in, it kills the
// active controller, and starts it again after -broker-down too. (A broker
// takes 15-30 s to serve again on two busy cores; these times let both
// kills fall while jobs are still enqueued, so both show a failover.) One broker is
// down at a time: with two down the controllers lose their quorum. On a
// single real broker it restarts it halfway; on the embedded one it does
// nothing.
func (r *runner) faultBrokers(ctx context.Context, began time.Time, realBroker bool) ([]event, error) {
	committed := func() map[int]int64 {
		c, err := r.committed(ctx)
		if err != nil {
			return nil
		}
		return c
	}
	switch {
	case r.o.cluster:
		var evs []event
		for i, what := range []string{"leader-kill", "controller-kill"} {
			at := began.Add(r.o.duration / 8)
			if i == 1 {
				at = began.Add(r.o.duration * 2 / 5)
			}
			time.Sleep(time.Until(at))
			ev, err := r.killBroker(ctx, what, committed())
			if err != nil {
				return evs, err
			}
			evs = append(evs, ev)
			time.Sleep(r.o.brokerDown)
			if err := r.startBroker(ev.node); err != nil {
				return evs, err
			}
		}
		return evs, nil
	case realBroker && r.o.restartBroker:
		time.Sleep(time.Until(began.Add(r.o.duration / 2)))
		ev, err := r.restartBroker(committed())
		return []event{ev}, err
	}
	return nil, nil
}

func (r *runner) restartBroker(committed map[int]int64) (event, error) {
	ev := event{what: "restart", at: time.Now().UnixNano(), committed: committed}
	r.logf("restarting the broker with %s restart", r.o.kafkaScript)
	out, err := exec.Command("bash", r.o.kafkaScript, "restart").CombinedOutput()
	if err != nil {
		return ev, fmt.Errorf("broker restart: %w\n%s", err, out)
	}
	ev.died = time.Now().UnixNano()
	ev.settled = ev.died + int64(settleTime)
	ev.recovered = ev.died + int64(recoverTime)
	r.brokerFaults.Add(1)
	r.logf("broker back after %v", time.Duration(ev.died-ev.at).Round(time.Millisecond))
	return ev, nil
}

// killBroker SIGKILLs a node of the cluster: for "leader-kill" the one that
// leads the most partitions of the topic, for "controller-kill" the active
// controller. It records each partition's leader and end offset first, for
// the failover times.
func (r *runner) killBroker(ctx context.Context, what string, committed map[int]int64) (event, error) {
	ev := event{what: what, committed: committed}
	leaders, err := r.leaders(ctx)
	if err != nil {
		return ev, fmt.Errorf("%s: %w", what, err)
	}
	if what == "controller-kill" {
		out, err := exec.Command("bash", r.o.clusterScript, "controller").Output()
		if err != nil {
			return ev, fmt.Errorf("%s: finding the active controller: %w", what, err)
		}
		if ev.node, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
			return ev, fmt.Errorf("%s: controller id %q: %w", what, out, err)
		}
	} else {
		led := map[int]int{}
		for _, l := range leaders {
			led[int(l)]++
		}
		for n, c := range led {
			if c > led[ev.node] || c == led[ev.node] && n < ev.node {
				ev.node = n
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ends, err := r.admin.EndOffsets(cctx, r.topic)
	cancel()
	if err != nil {
		return ev, fmt.Errorf("%s: end offsets: %w", what, err)
	}
	ev.leaders, ev.ends = leaders, ends
	ev.at = time.Now().UnixNano()
	out, err := exec.Command("bash", r.o.clusterScript, "kill", strconv.Itoa(ev.node)).CombinedOutput()
	if err != nil {
		return ev, fmt.Errorf("%s: %w\n%s", what, err, out)
	}
	ev.died = time.Now().UnixNano()
	ev.settled = ev.at + int64(brokerFenceTime+settleTime)
	ev.recovered = ev.at + int64(brokerFenceTime+recoverTime)
	r.brokerFaults.Add(1)
	n := 0
	for _, l := range leaders {
		if l == int64(ev.node) {
			n++
		}
	}
	r.logf("%s: killed broker %d, which led %d of %d partitions", what, ev.node, n, len(leaders))
	return ev, nil
}

func (r *runner) startBroker(node int) error {
	r.logf("starting broker %d again", node)
	out, err := exec.Command("bash", r.o.clusterScript, "start", strconv.Itoa(node)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("starting broker %d: %w\n%s", node, err, out)
	}
	r.logf("broker %d serves again", node)
	return nil
}

// leaders reads each partition's leader (node id) from a broker's metadata.
func (r *runner) leaders(ctx context.Context) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(r.brokers...), Timeout: 5 * time.Second}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{r.topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	out := map[int]int64{}
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			out[p.ID] = int64(p.Leader.ID)
		}
	}
	return out, nil
}

// stopAll stops every worker still running, gracefully.
func (r *runner) stopAll() {
	r.mu.Lock()
	ws := r.workers
	r.workers = nil
	r.mu.Unlock()
	for _, w := range ws {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, w := range ws {
		select {
		case <-w.exited:
		case <-time.After(40 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	}
}

// enqueue sends the jobs evenly over 80% of the run, in order: job i is seq
// i/keys of key i%keys. A batch that fails in part is resent in part before
// the next one, so each key's jobs stay in order; it returns how many jobs
// were resent (each may now be in the topic twice).
func (r *runner) enqueue(ctx context.Context) (int, error) {
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: r.brokers, Topic: r.topic,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return 0, err
	}
	defer client.Close()
	const tick = 100 * time.Millisecond
	ticks := max(1, int(r.o.duration*8/10/tick))
	perTick := int(math.Ceil(float64(r.o.jobs) / float64(ticks)))
	resent := 0
	t := time.NewTicker(tick)
	defer t.Stop()
	for from := 0; from < r.o.jobs; from += perTick {
		params := make([]jobs.EnqueueParams, 0, perTick)
		for i := from; i < min(r.o.jobs, from+perTick); i++ {
			params = append(params, jobs.EnqueueParams{Args: chaosArgs{Key: keyName(i % r.o.keys), Seq: i / r.o.keys}})
		}
		deadline := time.Now().Add(2 * time.Minute)
		for len(params) > 0 {
			infos, err := client.EnqueueMany(ctx, params)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return resent, fmt.Errorf("enqueue: %w", err)
			}
			var failed []jobs.EnqueueParams
			for i, info := range infos {
				if info.Partition < 0 {
					failed = append(failed, params[i])
				}
			}
			if infos == nil {
				failed = params
			}
			resent += len(failed)
			r.logf("enqueue: %d of %d jobs failed, resending: %v", len(failed), len(params), err)
			params = failed
			time.Sleep(500 * time.Millisecond)
		}
		r.enqueued.Store(int64(min(r.o.jobs, from+perTick)))
		<-t.C
	}
	r.logf("enqueued %d jobs (%d resent)", r.o.jobs, resent)
	return resent, nil
}

func (r *runner) committed(ctx context.Context) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return r.admin.CommittedOffsets(ctx, r.group, r.topic)
}

// waitDrained waits until the group's committed offsets reach the topic's
// end offsets on every partition.
func (r *runner) waitDrained(ctx context.Context) error {
	deadline := time.Now().Add(r.o.drainTimeout)
	var last string
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		end, err := r.admin.EndOffsets(cctx, r.topic)
		var committed map[int]int64
		if err == nil {
			committed, err = r.admin.CommittedOffsets(cctx, r.group, r.topic)
		}
		cancel()
		if err == nil {
			behind := 0
			for p, e := range end {
				behind += int(e - committed[p])
			}
			if behind == 0 && len(end) == r.o.partitions {
				return nil
			}
			last = fmt.Sprintf("%d records not committed", behind)
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("the group did not drain within %v: %s", r.o.drainTimeout, last)
}

// progressEvery is how often the runner prints a progress line.
const progressEvery = 3 * time.Second

func (r *runner) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

// reportProgress prints a line to stderr every period until stop is called:
// the phase, jobs enqueued, records committed (the group's offsets, summed,
// so a resent job counts twice) and faults so far. stop waits for a line
// being printed, so none follows it; it may be called more than once.
func (r *runner) reportProgress(ctx context.Context, began time.Time, period time.Duration) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(period)
		defer t.Stop()
		committed := "?"
		for {
			select {
			case <-t.C:
			case <-done:
				return
			}
			// During a broker restart the offsets cannot be read;
			// the last ones read stand.
			if offs, err := r.committed(ctx); err == nil {
				var n int64
				for _, o := range offs {
					n += max(o, 0)
				}
				committed = strconv.FormatInt(n, 10)
			}
			r.mu.Lock()
			phase, workers := r.phase, len(r.workers)
			r.mu.Unlock()
			faults := fmt.Sprintf("kills %d", r.kills.Load())
			if n := r.brokerFaults.Load(); n > 0 {
				faults += fmt.Sprintf(", broker faults %d", n)
			}
			fmt.Fprintf(os.Stderr, "chaos: %v %s: enqueued %d/%d, committed %s, %s, workers %d\n",
				time.Since(began).Round(time.Second), phase, r.enqueued.Load(), r.o.jobs, committed, faults, workers)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-exited
		})
	}
}
