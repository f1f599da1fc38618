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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ordo-go/ordo/jobs"
)

// s4 measures memory while a slow handler works through a backlog: peak RSS
// and peak heap of a process that runs only the jobs.Server, sampled over a
// fixed window, for each backlog size. Each size tops up the same topic, so
// the backlog is produced once. The server runs in a child process so that
// neither the producer nor an embedded broker (which holds the whole backlog
// in memory) counts towards its RSS.
func (b *bench) s4(ctx context.Context) error {
	sz := b.sizes
	b.progressf("bench S4: memory, backlogs %v over %d keys, %d partitions, %v jobs, c=%d, MaxBuffered %d, window %v",
		sz.s4Backlogs, sz.s4Keys, sz.s4Partitions, sz.s4Work, sz.s4Concurrency, sz.s4MaxBuf, sz.s4Window)
	topic, err := b.newTopic(ctx, "s4", sz.s4Partitions)
	if err != nil {
		return err
	}
	work := int(sz.s4Work / time.Microsecond)
	produced := 0
	var first childResult
	for i, backlog := range sz.s4Backlogs {
		from := produced
		err := b.enqueue(ctx, fmt.Sprintf("S4 backlog=%d", backlog), topic, backlog-from, func(i int) jobs.JobArgs {
			return SleepArgs{Key: "key-" + strconv.Itoa((from+i)%sz.s4Keys), Micros: work}
		})
		if err != nil {
			return err
		}
		produced = backlog
		res, err := b.runChild(ctx, childConfig{
			Brokers: b.target.Brokers, Topic: topic, Group: uniqueName("bench-s4"),
			Concurrency: sz.s4Concurrency, MaxBuffered: sz.s4MaxBuf, Window: sz.s4Window,
		})
		if err != nil {
			return fmt.Errorf("backlog %d: %w", backlog, err)
		}
		if i == 0 {
			first = res
		}
		bufBound := sz.s4MaxBuf * sz.s4Partitions
		b.progressf("bench S4 backlog=%d: peak RSS %.1f MB, peak heap %.1f MB, %d jobs done in %v, peak buffered %d (bound %d), peak live keys %d",
			backlog, mb(res.PeakRSS), mb(res.PeakHeap), res.Done, sz.s4Window, res.PeakBuffered, bufBound, res.PeakKeys)
		r := float64(res.PeakRSS) / float64(first.PeakRSS)
		const limit = 256 << 20
		ok := res.PeakRSS <= limit && r <= 1.2
		b.record(result{
			Scenario: "S4",
			Measurement: fmt.Sprintf("backlog=%d over %d keys (%d partitions, %v jobs, c=%d, %v window)",
				backlog, sz.s4Keys, sz.s4Partitions, sz.s4Work, sz.s4Concurrency, sz.s4Window),
			Ordo: fmt.Sprintf("peak RSS %.1f MB, heap %.1f MB (buffered ≤ %d, bound %d; live keys ≤ %d; %d jobs done)",
				mb(res.PeakRSS), mb(res.PeakHeap), res.PeakBuffered, bufBound, res.PeakKeys, res.Done),
			Baseline: fmt.Sprintf("limit 256 MB; RSS at backlog %d: %.1f MB", sz.s4Backlogs[0], mb(first.PeakRSS)),
			Ratio:    fmt.Sprintf("%.2f (RSS / RSS at %d)", r, sz.s4Backlogs[0]),
			Target:   "≤ 256 MB, flat (≤ 1.2)",
			Met:      met(ok),
			Line: fmt.Sprintf("bench S4 backlog=%d: peak_rss=%.1f MB heap=%.1f MB limit=256 MB broker=%s ratio=%.2f",
				backlog, mb(res.PeakRSS), mb(res.PeakHeap), b.target.Name, r),
		})
	}
	return nil
}

func mb(bytes uint64) float64 { return float64(bytes) / (1 << 20) }

// childEnv names the environment variable that turns the bench binary (or
// the test binary, see TestMain) into S4's measured process.
const childEnv = "ORDO_BENCH_S4_CHILD"

type childConfig struct {
	Brokers     []string
	Topic       string
	Group       string
	Concurrency int
	MaxBuffered int
	Window      time.Duration
}

type childResult struct {
	PeakRSS      uint64 // VmHWM
	PeakHeap     uint64 // highest HeapInuse sampled
	Done         int64
	PeakBuffered int
	PeakKeys     int
	Err          string
}

func isChild() bool { return os.Getenv(childEnv) != "" }

func (b *bench) runChild(ctx context.Context, cfg childConfig) (childResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return childResult{}, err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return childResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Window+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = b.progress
	if err := cmd.Run(); err != nil {
		return childResult{}, fmt.Errorf("memory child: %w", err)
	}
	var res childResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return childResult{}, fmt.Errorf("memory child said %q: %w", out.String(), err)
	}
	if res.Err != "" {
		return res, fmt.Errorf("memory child: %s", res.Err)
	}
	return res, nil
}

// childMain runs a jobs.Server over the backlog for the window, sampling its
// own memory, and prints a childResult as JSON.
func childMain() int {
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
	w := jobs.NewWorkers()
	if err := jobs.AddWorker(w, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SleepArgs]) error {
		time.Sleep(time.Duration(job.Args.Micros) * time.Microsecond)
		done.Add(1)
		return nil
	})); err != nil {
		return res, err
	}
	s, err := jobs.NewServer(jobs.Config{
		Brokers: cfg.Brokers, Group: cfg.Group, Topics: []string{cfg.Topic}, Workers: w,
		Concurrency: cfg.Concurrency, MaxBuffered: cfg.MaxBuffered,
		Logger: newLogger(os.Stderr),
	})
	if err != nil {
		return res, err
	}
	if err := s.Start(context.Background()); err != nil {
		return res, err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(cfg.Window)
	var ms runtime.MemStats
sample:
	for {
		select {
		case <-end:
			break sample
		case <-tick.C:
		}
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
	if res.PeakRSS, err = procStatus("VmHWM"); err != nil {
		return res, err
	}
	res.Done = done.Load()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return res, s.Stop(ctx)
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
