package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// scenarios in the order they run.
var scenarios = []string{"S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11", "S15"}

type options struct {
	quick   bool
	only    []string // empty: all
	backlog backlogShape
	// tune, when set, adjusts the sizes after -quick chose them (the
	// harness test keeps its own run short).
	tune       func(*sizes)
	out        string
	cpuprofile string
	memprofile string
}

func main() {
	if isChild() {
		os.Exit(childMain())
	}
	var o options
	var only string
	flag.BoolVar(&o.quick, "quick", false, "smaller sizes, same lines (a minute or two)")
	backlog := flag.String("backlog", string(chunked),
		"how the scenarios write their backlogs: chunked (EnqueueMany, many jobs per record batch) or single (one Enqueue, one record batch, per job); S4 measures both either way")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run, e.g. S1,S3 (default all)")
	flag.StringVar(&o.out, "out", filepath.Join("bench", "results"), "directory for <broker>.md and the charts")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile at the end of the run to this file")
	flag.Parse()
	var err error
	switch o.backlog = backlogShape(*backlog); o.backlog {
	case chunked, oneRecord:
	default:
		fmt.Fprintf(os.Stderr, "bench: -backlog: %q is neither %s nor %s\n", *backlog, chunked, oneRecord)
		os.Exit(2)
	}
	if o.only, err = parseOnly(only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := mainErr(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseOnly(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if !slices.Contains(scenarios, f) {
			return nil, fmt.Errorf("-only: unknown scenario %q (want some of %s)", f, strings.Join(scenarios, ","))
		}
		out = append(out, f)
	}
	return out, nil
}

func mainErr(o options) error {
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	brk, err := openBroker()
	if err != nil {
		return err
	}
	defer brk.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	err = run(ctx, o, brk.target, os.Stdout, os.Stderr)
	if o.memprofile != "" {
		f, ferr := os.Create(o.memprofile)
		if ferr != nil {
			return errors.Join(err, ferr)
		}
		defer f.Close()
		err = errors.Join(err, pprof.Lookup("allocs").WriteTo(f, 0))
	}
	return err
}

// target is the broker the benchmarks run against.
type target struct {
	// Name names the broker in every result: "kafka" or "embedded".
	Name    string
	Brokers []string
}

type openedBroker struct {
	target target
	close  func()
}

// openBroker returns the broker in KAFKA_BROKERS, else an embedded one.
func openBroker() (openedBroker, error) {
	if v := strings.TrimSpace(os.Getenv("KAFKA_BROKERS")); v != "" {
		return openedBroker{target{"kafka", strings.Split(v, ",")}, func() {}}, nil
	}
	b, err := kafkaembed.Start()
	if err != nil {
		return openedBroker{}, err
	}
	return openedBroker{target{"embedded", b.Addrs()}, b.Close}, nil
}

// run runs the selected scenarios against tgt, prints progress to progress
// and the summary lines and table to summary, and writes the table and
// charts under o.out.
func run(ctx context.Context, o options, tgt target, summary, progress io.Writer) error {
	// Progress comes from the scenarios, ordo's logger and a child's
	// stderr at once.
	progress = &syncWriter{w: progress}
	b := &bench{
		target:   tgt,
		sizes:    defaultSizes(),
		admin:    kafka.NewAdmin(tgt.Brokers),
		summary:  summary,
		progress: progress,
		logger:   newLogger(progress),
		quick:    o.quick,
		backlog:  o.backlog,
	}
	if b.backlog == "" {
		b.backlog = chunked
	}
	if o.quick {
		b.sizes = quickSizes()
	}
	if o.tune != nil {
		o.tune(&b.sizes)
	}
	b.progressf("bench: broker=%s (%s) quick=%v backlog=%s go=%s cpus=%d", tgt.Name, strings.Join(tgt.Brokers, ","),
		o.quick, b.backlog, runtime.Version(), runtime.NumCPU())
	began := time.Now()
	defer b.cleanup()
	steps := map[string]func(context.Context) error{
		"S1": b.s1, "S2": b.s2, "S3": b.s3, "S4": b.s4, "S5": b.s5, "S6": b.s6, "S7": b.s7, "S8": b.s8, "S9": b.s9, "S10": b.s10, "S11": b.s11, "S15": b.s15,
	}
	var errs []error
	for _, s := range scenarios {
		if len(o.only) > 0 && !slices.Contains(o.only, s) {
			continue
		}
		t := time.Now()
		if err := steps[s](ctx); err != nil {
			b.progressf("bench %s: FAILED: %v", s, err)
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
		}
		b.progressf("bench %s: took %v", s, time.Since(t).Round(100*time.Millisecond))
	}
	b.progressf("bench: all done in %v", time.Since(began).Round(100*time.Millisecond))
	if err := b.report(o, time.Since(began)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
