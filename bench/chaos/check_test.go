package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// x is an execution of key-0 (2 jobs: seq 0 and 1, keys=1).
func x(proc string, seq int, offset, start, end int64, outcome string) *execution {
	return &execution{proc: proc, key: "key-0", seq: seq, offset: offset, start: start, end: end, outcome: outcome}
}

// y is an execution of key-<key> seq 0, for runs with 2 keys.
func y(proc string, key int, offset, start, end int64, outcome string) *execution {
	return &execution{proc: proc, key: keyName(key), offset: offset, start: start, end: end, outcome: outcome}
}

func TestCheckDefinitions(t *testing.T) {
	kill := func(proc string, at int64) event {
		return event{what: "SIGKILL", proc: proc, at: at, died: at, settled: at, committed: map[int]int64{0: 0}}
	}
	restart := func(at, recovered int64) event {
		return event{what: "restart", at: at, died: at, settled: recovered, recovered: recovered, committed: map[int]int64{0: 0}}
	}
	cmt := func(proc string, offset, at int64, meta string) commit {
		return commit{proc: proc, offset: offset, at: at, metadata: meta}
	}
	cases := []struct {
		name                       string
		keys                       int
		execs                      []*execution
		commits                    []commit
		releases                   []release
		events                     []event
		lost, order, overlaps, dup int
		bound, logDup              int
		ok                         bool
	}{
		{name: "clean", execs: []*execution{x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok")}, ok: true},
		{name: "lost", execs: []*execution{x("p1", 0, 0, 1, 2, "ok")}, lost: 1, order: 0},
		{name: "killed mid-job then re-run elsewhere", execs: []*execution{
			x("p1", 0, 0, 1, 0, ""), // p1 died at 5 running seq 0
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, events: []event{kill("p1", 5)}, dup: 1, bound: 1, ok: true},
		{name: "jobs finished after the last commit run again", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, events: []event{kill("p1", 5)}, dup: 2, bound: 2, ok: true},
		{name: "a commit covers what finished below it", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, commits: []commit{cmt("p1", 2, 4, "")}, events: []event{kill("p1", 5)}, dup: 2, bound: 0},
		{name: "a commit made after the kill covers nothing", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, commits: []commit{cmt("p1", 2, 14, "")}, events: []event{kill("p1", 5)}, dup: 2, bound: 2, ok: true},
		{name: "the next owner's commits do not cover what the killed worker ran", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, commits: []commit{cmt("p2", 2, 4, "")}, events: []event{kill("p1", 5)}, dup: 2, bound: 2, ok: true},
		{name: "the metadata's finished offsets are covered", keys: 2, execs: []*execution{
			y("p1", 0, 0, 1, 0, ""),     // in flight at the kill
			y("p1", 1, 1, 2, 3, "ok"),   // finished above it, listed in the metadata
			y("p2", 0, 0, 10, 11, "ok"), // the only re-run allowed
		}, commits: []commit{cmt("p1", 0, 4, "ordo1:1+1")}, events: []event{kill("p1", 5)}, dup: 1, bound: 1, ok: true},
		{name: "re-running a finished offset the metadata listed breaks the bound", keys: 2, execs: []*execution{
			y("p1", 0, 0, 1, 0, ""), y("p1", 1, 1, 2, 3, "ok"),
			y("p2", 0, 0, 10, 11, "ok"), y("p2", 1, 1, 12, 13, "ok"),
		}, commits: []commit{cmt("p1", 0, 4, "ordo1:1+1")}, events: []event{kill("p1", 5)}, dup: 2, bound: 1},
		{name: "a broker fault counts what no commit covered once the group recovered", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 30, 31, "ok"),
		}, commits: []commit{cmt("p1", 1, 2, ""), cmt("p1", 2, 25, "")}, releases: []release{{"p1", 0, 10}},
			events: []event{restart(5, 20)}, dup: 1, bound: 1, ok: true},
		{name: "the same worker re-running after a broker fault counts at its hand-over, not at its later commits", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"), // their commits fail: the broker is down
			x("p1", 0, 0, 15, 16, "ok"), x("p1", 1, 1, 17, 18, "ok"), // the next generation, same worker
		}, commits: []commit{cmt("p1", 2, 19, "")}, releases: []release{{"p1", 0, 12}},
			events: []event{restart(5, 20)}, dup: 2, bound: 2, ok: true},
		{name: "a hand-over outside every fault must re-run nothing", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 15, 16, "ok"), x("p2", 1, 1, 17, 18, "ok"),
		}, releases: []release{{"p1", 0, 12}}, events: []event{restart(30, 40)}, dup: 2, bound: 0},
		{name: "a job written twice is a log duplicate, not a re-run", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 0, 1, 3, 4, "ok"), x("p1", 1, 2, 5, 6, "ok"),
		}, logDup: 1, ok: true},
		{name: "later seq started before the earlier one finished", execs: []*execution{
			x("p1", 0, 0, 1, 5, "ok"), x("p2", 1, 1, 3, 6, "ok"),
		}, order: 1, overlaps: 1},
		{name: "later seq ran first", execs: []*execution{
			x("p1", 1, 1, 1, 2, "ok"), x("p1", 0, 0, 3, 4, "ok"),
		}, order: 1},
		{name: "new owner ran the key while the killed one still ran it", execs: []*execution{
			x("p1", 0, 0, 1, 0, ""), x("p2", 0, 0, 3, 4, "ok"), x("p2", 1, 1, 5, 6, "ok"),
		}, events: []event{kill("p1", 5)}, overlaps: 1, dup: 1, bound: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys := max(c.keys, 1)
			v := check(2, keys, c.execs, c.commits, c.releases, c.events, 0)
			if v.lost != c.lost || v.orderViolations != c.order || v.overlaps != c.overlaps || v.duplicates != c.dup ||
				v.bound != c.bound || v.logDuplicates != c.logDup {
				t.Errorf("got %v, want lost=%d order_violations=%d overlaps=%d duplicates=%d bound=%d log_duplicates=%d (%v)",
					v, c.lost, c.order, c.overlaps, c.dup, c.bound, c.logDup, v.examples)
			}
			if v.ok() != c.ok {
				t.Errorf("ok() = %v, want %v", v.ok(), c.ok)
			}
		})
	}
}

func TestLeaderFailover(t *testing.T) {
	ev := event{what: "leader-kill", node: 2, at: 1e9, died: 1e9,
		leaders: map[int]int64{0: 2, 1: 1, 2: 2}, ends: map[int]int64{0: 100, 1: 50, 2: 70}}
	execs := []*execution{
		{partition: 0, offset: 99, start: 1.2e9},  // fetched before the kill: not a sign of flow
		{partition: 0, offset: 100, start: 4e9},   // enqueued after: 3000 ms
		{partition: 0, offset: 101, start: 3.5e9}, // earlier start of a later offset: 2500 ms
		{partition: 1, offset: 60, start: 1.1e9},  // led by another broker
		{partition: 2, offset: 70, start: 9e9},    // 8000 ms
	}
	got := failovers(ev, execs)
	if !slices.Equal(got, []float64{2500, 8000}) {
		t.Fatalf("failovers = %v, want [2500 8000]", got)
	}
	v := &verdict{failovers: got}
	if s := v.String(); !strings.Contains(s, "leader_failover_ms=p50:8000,max:8000(n=2)") {
		t.Fatalf("summary %q", s)
	}
}

func TestLedgerSurvivesATornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	l, err := openLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.start("key-1", 3, 2, 40, 100); err != nil {
		t.Fatal(err)
	}
	if err := l.end("key-1", 3, 2, 40, 100, 200, "ok"); err != nil {
		t.Fatal(err)
	}
	if err := l.start("key-2", 0, 1, 7, 150); err != nil {
		t.Fatal(err)
	}
	if err := l.commit(2, 41, 210, "ordo1:2+1"); err != nil {
		t.Fatal(err)
	}
	if err := l.commit(1, 7, 220, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.release(2, 230); err != nil {
		t.Fatal(err)
	}
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("E key-2 0 1 7 15")
	f.Close()
	es, cs, rs, err := readLedger(path, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].end != 200 || es[0].outcome != "ok" || es[1].end != 0 || es[1].offset != 7 {
		t.Fatalf("read %+v %+v", es[0], es[1])
	}
	want := []commit{{proc: "p1", partition: 2, offset: 41, at: 210, metadata: "ordo1:2+1"}, {proc: "p1", partition: 1, offset: 7, at: 220}}
	if !slices.Equal(cs, want) {
		t.Fatalf("commits %+v, want %+v", cs, want)
	}
	if !slices.Equal(rs, []release{{proc: "p1", partition: 2, at: 230}}) {
		t.Fatalf("releases %+v, want partition 2 at 230", rs)
	}
}
