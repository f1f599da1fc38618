package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// childEnv names the environment variable that turns the bench binary (or
// the test binary, see TestMain) into the measured process of S4 and S6: it
// runs only a jobs.Server, so that neither the producer nor an embedded
// broker (which holds every record in memory) counts towards its RSS.
const childEnv = "ORDO_BENCH_CHILD"

// raceExitCode is how a process built with -race exits after it reported a
// data race (GORACE's exitcode).
const raceExitCode = 66

// childConfig says what the child runs: a jobs.Server over Topic, for Window
// (S4), or until each of Marks jobs are done (S6), reading its memory at
// each.
type childConfig struct {
	Label       string // names the child's progress lines
	Brokers     []string
	Topic       string
	Group       string
	Concurrency int
	MaxBuffered int // 0: the server's default
	Window      time.Duration
	Marks       []int64 // ascending
	// Timeout bounds a run until Marks; 0: no bound but the parent's.
	Timeout time.Duration
	// EmptyTopic, when set, makes the child measure the live heap the
	// server holds with nothing to hold (S4 amplification): a server over
	// this topic, which has EmptyPartitions partitions and no records,
	// runs first; then, at the end of Window over Topic, the live heap
	// again and the records held.
	EmptyTopic      string
	EmptyPartitions int
	// SchedulesPending, when positive, makes the server dispatch the
	// topic's scheduled jobs (S9) and the child end once this many are
	// indexed as pending.
	SchedulesPending int
}

type childResult struct {
	PeakRSS      uint64 // VmHWM at the end
	PeakHeap     uint64 // highest HeapInuse sampled
	Done         int64
	PeakBuffered int
	PeakKeys     int
	Marks        []childMark
	// ConstantHeap is the live heap (HeapAlloc right after a GC) of a
	// server over EmptyTopic; HeldHeap the same at the end of Window
	// over Topic, when the server held Held records (the sum of
	// PartitionStats.Buffered, the mean of its reads before and after
	// the GC).
	ConstantHeap, HeldHeap uint64
	Held                   float64
	Err                    string
}

// childMark is the child's memory when Done jobs were done.
type childMark struct {
	Done     int64
	RSS      uint64        // VmHWM: the peak so far
	Heap     uint64        // HeapInuse then
	PeakHeap uint64        // highest HeapInuse sampled so far
	PeakKeys int           // most live key actors sampled so far
	At       time.Duration // since the server started
}

func isChild() bool { return os.Getenv(childEnv) != "" }

// runChild runs cfg in a child process, its progress going to b.progress.
func (b *bench) runChild(ctx context.Context, cfg childConfig) (childResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return childResult{}, err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return childResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Window+cfg.Timeout+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = b.progress
	if err := cmd.Run(); err != nil {
		// A child that failed still says why on stdout.
		var res childResult
		if json.Unmarshal(out.Bytes(), &res) == nil && res.Err != "" {
			return res, fmt.Errorf("child: %s", res.Err)
		}
		if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == raceExitCode {
			return childResult{}, fmt.Errorf("child: the race detector found a data race in the server (exit status %d; its report is in the progress above)", raceExitCode)
		}
		return childResult{}, fmt.Errorf("child: %w", err)
	}
	var res childResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return childResult{}, fmt.Errorf("child said %q: %w", out.String(), err)
	}
	if res.Err != "" {
		return res, fmt.Errorf("child: %s", res.Err)
	}
	return res, nil
}

// childMain runs the childConfig in the environment and prints a
// childResult as JSON.
func childMain() int {
	if os.Getenv("ORDO_BENCH_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 4096 // fine enough to tell a key actor's parts apart
	}
	res, err := child()
	if err != nil {
		res.Err = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if err != nil {
		return 1
	}
	return 0
}

func child() (childResult, error) {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		return childResult{}, err
	}
	var res childResult
	var done atomic.Int64
	reached := make(chan int64, len(cfg.Marks))
	finished := func() {
		if n := done.Add(1); slices.Contains(cfg.Marks, n) {
			reached <- n
		}
	}
	w := jobs.NewWorkers()
	err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SleepArgs]) error {
		time.Sleep(time.Duration(job.Args.Micros) * time.Microsecond)
		finished()
		return nil
	}))
	if err == nil {
		err = jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[NoopArgs]) error {
			finished()
			return nil
		}))
	}
	if err != nil {
		return res, err
	}
	schedules := jobs.SchedulesOff
	if cfg.SchedulesPending > 0 {
		schedules = jobs.SchedulesOn
	}
	serverConfig := func(topic, group string) jobs.Config {
		return jobs.Config{
			Brokers: cfg.Brokers, Group: group, Topics: []string{topic}, Workers: w,
			CreateTopics: &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1}, // the dead-letter topic
			Concurrency:  cfg.Concurrency, MaxBuffered: cfg.MaxBuffered, Schedules: schedules,
			Logger: newLogger(os.Stderr),
		}
	}
	if cfg.EmptyTopic != "" {
		if res.ConstantHeap, err = idleHeap(serverConfig(cfg.EmptyTopic, cfg.Group+"-empty"), cfg.EmptyPartitions); err != nil {
			return res, fmt.Errorf("server over an empty topic: %w", err)
		}
		fmt.Fprintf(os.Stderr, "bench %s child: live heap of a server holding nothing: %.1f MB\n", cfg.Label, mb(res.ConstantHeap))
	}
	s, err := jobs.NewServer(serverConfig(cfg.Topic, cfg.Group))
	if err != nil {
		return res, err
	}
	began := time.Now()
	if err := s.Start(context.Background()); err != nil {
		return res, err
	}
	var ms runtime.MemStats
	sample := func() {
		runtime.ReadMemStats(&ms)
		res.PeakHeap = max(res.PeakHeap, ms.HeapInuse)
		buffered, keys := 0, 0
		for _, p := range s.Stats() {
			buffered += p.Buffered
			keys += p.Keys
		}
		res.PeakBuffered = max(res.PeakBuffered, buffered)
		res.PeakKeys = max(res.PeakKeys, keys)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	report := time.NewTicker(3 * time.Second)
	defer report.Stop()
	var window, deadline <-chan time.Time
	if cfg.Window > 0 {
		window = time.After(cfg.Window)
	}
	if cfg.Timeout > 0 {
		deadline = time.After(cfg.Timeout)
	}
	var runErr error
run:
	for {
		select {
		case <-window:
			break run
		case n := <-reached:
			sample()
			rss, err := procStatus("VmHWM")
			if err != nil {
				runErr = err
				break run
			}
			res.Marks = append(res.Marks, childMark{Done: n, RSS: rss, Heap: ms.HeapInuse,
				PeakHeap: res.PeakHeap, PeakKeys: res.PeakKeys, At: time.Since(began)})
			fmt.Fprintf(os.Stderr, "bench %s child: %d jobs done after %v: VmHWM %.1f MB, heap in use %.1f MB (peak %.1f MB), peak live keys %d\n",
				cfg.Label, n, time.Since(began).Round(100*time.Millisecond), mb(rss), mb(ms.HeapInuse), mb(res.PeakHeap), res.PeakKeys)
			if n == cfg.Marks[len(cfg.Marks)-1] {
				break run
			}
		case <-tick.C:
			sample()
			if cfg.SchedulesPending > 0 && pending(s) >= cfg.SchedulesPending {
				fmt.Fprintf(os.Stderr, "bench %s child: %d pending after %v\n", cfg.Label, pending(s), time.Since(began).Round(100*time.Millisecond))
				break run
			}
		case <-report.C:
			rss, _ := procStatus("VmRSS")
			fmt.Fprintf(os.Stderr, "bench %s child: %d done after %v, RSS %.1f MB, heap in use %.1f MB, live keys ≤ %d\n",
				cfg.Label, done.Load(), time.Since(began).Round(time.Second), mb(rss), mb(ms.HeapInuse), res.PeakKeys)
		case <-deadline:
			if cfg.SchedulesPending > 0 {
				runErr = fmt.Errorf("only %d of %d scheduled jobs pending after %v", pending(s), cfg.SchedulesPending, cfg.Timeout)
				break run
			}
			runErr = fmt.Errorf("only %d of %d jobs done after %v", done.Load(), cfg.Marks[len(cfg.Marks)-1], cfg.Timeout)
			break run
		}
	}
	if cfg.EmptyTopic != "" && runErr == nil {
		before := held(s)
		liveHeap(&ms)
		res.HeldHeap, res.Held = ms.HeapAlloc, float64(before+held(s))/2
		if path := os.Getenv("ORDO_BENCH_HEAP_PROFILE"); path != "" {
			// What the held heap is made of: go tool pprof -sample_index=inuse_space.
			if err := writeHeapProfile(path); err != nil && runErr == nil {
				runErr = err
			}
		}
		fmt.Fprintf(os.Stderr, "bench %s child: live heap %.1f MB holding %.0f records\n", cfg.Label, mb(res.HeldHeap), res.Held)
	}
	res.Done = done.Load()
	if res.PeakRSS, err = procStatus("VmHWM"); err != nil && runErr == nil {
		runErr = err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Stop(ctx); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

// held is how many records s holds: fetched and not finished, whether
// handed to their keys (Buffered) or still in a fetch response
// (Prefetched).
func held(s *jobs.Server) int {
	n := 0
	for _, p := range s.Stats() {
		n += p.Buffered + p.Prefetched
	}
	return n
}

// idleHeap runs a server by cfg over a topic without records until it holds
// all its partitions and its fetches have had a second to start, and
// returns its live heap then.
func idleHeap(cfg jobs.Config, partitions int) (uint64, error) {
	s, err := jobs.NewServer(cfg)
	if err != nil {
		return 0, err
	}
	if err := s.Start(context.Background()); err != nil {
		return 0, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.Stop(ctx)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for len(s.Stats()) < partitions {
		select {
		case <-tick.C:
		case <-deadline:
			return 0, fmt.Errorf("holds %d of %d partitions after a minute", len(s.Stats()), partitions)
		}
	}
	<-time.After(time.Second)
	var ms runtime.MemStats
	liveHeap(&ms)
	return ms.HeapAlloc, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// liveHeap reads ms after two collections: the first moves what sync.Pools
// cache (kafka-go's decoding pages among it) to their victim caches, the
// second frees it, so HeapAlloc counts what the server holds, not what a
// pool would hand out again.
func liveHeap(ms *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
}

// pending is how many scheduled jobs s indexes, once every schedules
// partition it dispatches was read.
func pending(s *jobs.Server) int {
	n := 0
	for _, st := range s.Schedules() {
		if st.Reading {
			return 0
		}
		n += st.Pending
	}
	return n
}

// procStatus reads a memory field of /proc/self/status, in bytes.
func procStatus(field string) (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/status %s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("/proc/self/status has no %s", field)
}
