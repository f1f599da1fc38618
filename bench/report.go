package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// report prints the table and writes it, with the charts, under o.out.
func (b *bench) report(o options, took time.Duration) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	md := b.markdown(o, took)
	fmt.Fprint(b.summary, "\n"+md)
	path := filepath.Join(o.out, b.target.Name+".md")
	if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
		return err
	}
	b.progressfLocked("bench: wrote %s", path)
	if len(b.s2Points) > 0 {
		path := filepath.Join(o.out, b.target.Name+"-s2.png")
		err := chart(path, fmt.Sprintf("S2 Karafka VP scenario: 1 ms jobs (broker: %s)", b.target.Name),
			"concurrency", "jobs/s", "goroutine pool, no Kafka", true, b.s2Points)
		if err != nil {
			return fmt.Errorf("S2 chart: %w", err)
		}
		b.progressfLocked("bench: wrote %s", path)
	}
	if len(b.s3Points) > 0 {
		path := filepath.Join(o.out, b.target.Name+"-s3.png")
		err := chart(path, fmt.Sprintf("S3 Parallel Consumer scenario: 0–5 ms jobs, c=100 (broker: %s)", b.target.Name),
			"keys", "seconds", "bound × timer floor", false, b.s3Points)
		if err != nil {
			return fmt.Errorf("S3 chart: %w", err)
		}
		b.progressfLocked("bench: wrote %s", path)
	}
	if len(b.s3BlockingPoints) > 0 {
		path := filepath.Join(o.out, b.target.Name+"-s3-blocking.png")
		err := chart(path, fmt.Sprintf("S3 blocking: 0–5 ms jobs in nanosleep(2), c=100 (broker: %s)", b.target.Name),
			"keys", "seconds", "goroutine per key, no Kafka", false, b.s3BlockingPoints)
		if err != nil {
			return fmt.Errorf("S3 blocking chart: %w", err)
		}
		b.progressfLocked("bench: wrote %s", path)
	}
	return nil
}

func (b *bench) progressfLocked(format string, args ...any) {
	fmt.Fprintf(b.progress, format+"\n", args...)
}

func (b *bench) markdown(o options, took time.Duration) string {
	var sb strings.Builder
	cmd := "go run ./bench"
	if o.quick {
		cmd += " -quick"
	}
	if o.backlog == oneRecord {
		cmd += " -backlog " + string(oneRecord)
	}
	if len(o.only) > 0 {
		cmd += " -only " + strings.Join(o.only, ",")
	}
	if b.target.Name == "kafka" {
		cmd = "KAFKA_BROKERS=" + strings.Join(b.target.Brokers, ",") + " " + cmd
	}
	fmt.Fprintf(&sb, "# ordo benchmarks: broker %s\n\n", b.target.Name)
	fmt.Fprintf(&sb, "`%s` on %s, %s/%s, %d CPUs, %s; run took %v.\n\n", cmd, time.Now().UTC().Format("2006-01-02"),
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), took.Round(time.Second))
	if o.quick {
		sb.WriteString("**-quick run: sizes are reduced; the figures are not the benchmark's.**\n\n")
	}
	sb.WriteString("| scenario | measurement | ordo | baseline / bound | ratio | target | met |\n")
	sb.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range b.results {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Measurement, r.Ordo, r.Baseline, r.Ratio, r.Target, r.Met)
	}
	sb.WriteString(`
How it is measured (see bench/doc.go): throughput and seconds run from the
first job's start to the last job's end, so group joins are left out for ordo
and the baselines alike. S1 raw reads the records with kafka-go's Fetch, one
connection per partition, and touches only their bytes; fetch+decode does the
same and also decodes each envelope and its args, the floor for a job runner;
naive is one kafka-go Reader in a group that decodes each envelope and its
args, committing every second. S1's figures are those of the trial with
the median ordo/decode ratio, each trial running fetch+decode and ordo back
to back (the first of the two alternating); its row lists every trial's
ratio. S1's allocations are the whole process's per
job (an embedded broker's included); args is what msgpack.Unmarshal of one
NoopArgs allocates. S2's bound is concurrency × 1,000 jobs/s (Karafka
published 6,863 jobs/s at 14 threads); reader_pool, which ordo is held
to, is a kafka-go Reader feeding as many goroutines, no key order,
committing what finished, run right after ordo on the same topic; the pool
is as many goroutines sleeping through the same jobs without Kafka. S3's bound is jobs × 2.5 ms / min(keys, 100)
(Parallel Consumer published 2.06 s at 20 keys and 2.24 s at 10,000 keys),
and ordo is held to it times the timer floor; the blocking variant sleeps in
nanosleep(2) and is held to a goroutine per key under 100 slots, no Kafka.
S4 and S6 run the server in a child process and report its VmHWM; S6 streams
one job per distinct key while the server runs. S5 runs two servers in one
process: revocation is from the second Start to the first member's last
partition of the old generation being released (drained, committed); notice
is when that member saw the rebalance. S7 runs the same good jobs with and
without 10% undecodable records among them, clean and bad alternately, and
keeps the best of each; a bad run counts only when every bad record reached
the dead-letter topic, once. S10 times synchronous Enqueue calls, one job per
call, against a kafka-go Writer writing the same records (RequireAll):
sequentially, taking turns with a Writer of BatchSize 1, and from 64
goroutines against a Writer batching for 5 ms. S8 restarts each of three
members in turn while jobs stream in; "untouched" are the partitions the
restarted member did not hold, measured from its stop until the group
settled, against their own steady state. S4 runs each backlog written in
chunks and again with one Enqueue per job (a record batch each); S4
amplification is the server's live heap after a GC while it holds records
of the one-record backlog, less its live heap over an empty topic (the
constant), over the bytes of the records held. S15 enqueues one job per
Enqueue call at half the capacity measured first, each call started on a
goroutine of its own when it falls due, and times each job from enqueue to
start, for ordo and for reader_pool.

Summary lines:

`)
	sb.WriteString("```\n")
	for _, r := range b.results {
		if r.Line != "" {
			sb.WriteString(r.Line + "\n")
		}
	}
	sb.WriteString("```\n")
	return sb.String()
}

// chart draws ordo's figures, the bound and what Go alone achieves against
// x, both axes logarithmic.
func chart(path, title, xLabel, yLabel, goOnly string, legendLeft bool, pts []point) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.Y.Tick.Marker = oneTwoFive{}
	var xticks []plot.Tick
	ordo := make(plotter.XYs, len(pts))
	bound := make(plotter.XYs, len(pts))
	for i, pt := range pts {
		ordo[i] = plotter.XY{X: pt.X, Y: pt.Ordo}
		bound[i] = plotter.XY{X: pt.X, Y: pt.Bound}
		xticks = append(xticks, plot.Tick{Value: pt.X, Label: strconv.FormatFloat(pt.X, 'f', -1, 64)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(xticks)
	p.Add(plotter.NewGrid())
	lines := []any{"ordo", ordo, "bound", bound}
	if goOnly != "" {
		xys := make(plotter.XYs, len(pts))
		for i, pt := range pts {
			xys[i] = plotter.XY{X: pt.X, Y: pt.GoOnly}
		}
		lines = append(lines, goOnly, xys)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	// Room beyond the first and last points, so their tick labels and
	// the legend stay inside the picture.
	p.X.Min, p.X.Max = pts[0].X/1.5, pts[len(pts)-1].X*2
	p.Legend.Top, p.Legend.Left = true, legendLeft
	p.Legend.XOffs, p.Legend.YOffs = -5*vg.Millimeter, -2*vg.Millimeter
	if legendLeft {
		p.Legend.XOffs = 5 * vg.Millimeter
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// oneTwoFive labels a logarithmic axis at 1, 2 and 5 times each power of
// ten, so that a range of less than two decades still reads.
type oneTwoFive struct{}

func (oneTwoFive) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ticks
}
