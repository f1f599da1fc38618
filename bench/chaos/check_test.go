package main

import (
	"os"
	"path/filepath"
	"testing"
)

// x is an execution of key-0 (2 jobs: seq 0 and 1, keys=1).
func x(proc string, seq int, offset, start, end int64, outcome string) *execution {
	return &execution{proc: proc, key: "key-0", seq: seq, offset: offset, start: start, end: end, outcome: outcome}
}

func TestCheckDefinitions(t *testing.T) {
	kill := func(proc string, at int64, committed int64) event {
		return event{what: "SIGKILL", proc: proc, at: at, died: at, settled: at, committed: map[int]int64{0: committed}}
	}
	cases := []struct {
		name                       string
		execs                      []*execution
		events                     []event
		lost, order, overlaps, dup int
		bound                      int
		ok                         bool
	}{
		{name: "clean", execs: []*execution{x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok")}, ok: true},
		{name: "lost", execs: []*execution{x("p1", 0, 0, 1, 2, "ok")}, lost: 1, order: 0},
		{name: "killed mid-job then re-run elsewhere", execs: []*execution{
			x("p1", 0, 0, 1, 0, ""), // p1 died at 5 running seq 0
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, events: []event{kill("p1", 5, 0)}, dup: 1, bound: 1, ok: true},
		{name: "re-run of an earlier job after a later one is a duplicate, not a reordering", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, events: []event{kill("p1", 5, 0)}, dup: 2, bound: 2, ok: true},
		{name: "later seq started before the earlier one finished", execs: []*execution{
			x("p1", 0, 0, 1, 5, "ok"), x("p2", 1, 1, 3, 6, "ok"),
		}, order: 1, overlaps: 1},
		{name: "later seq ran first", execs: []*execution{
			x("p1", 1, 1, 1, 2, "ok"), x("p1", 0, 0, 3, 4, "ok"),
		}, order: 1},
		{name: "new owner ran the key while the killed one still ran it", execs: []*execution{
			x("p1", 0, 0, 1, 0, ""), x("p2", 0, 0, 3, 4, "ok"), x("p2", 1, 1, 5, 6, "ok"),
		}, events: []event{kill("p1", 5, 0)}, overlaps: 1, dup: 1, bound: 2},
		{name: "duplicates past the bound", execs: []*execution{
			x("p1", 0, 0, 1, 2, "ok"), x("p1", 1, 1, 3, 4, "ok"),
			x("p2", 0, 0, 10, 11, "ok"), x("p2", 1, 1, 12, 13, "ok"),
		}, events: []event{kill("p1", 5, 1)}, dup: 2, bound: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := check(2, 1, c.execs, c.events, 0)
			if v.lost != c.lost || v.orderViolations != c.order || v.overlaps != c.overlaps || v.duplicates != c.dup || v.bound != c.bound {
				t.Errorf("got %v, want lost=%d order_violations=%d overlaps=%d duplicates=%d bound=%d (%v)",
					v, c.lost, c.order, c.overlaps, c.dup, c.bound, v.examples)
			}
			if v.ok() != c.ok {
				t.Errorf("ok() = %v, want %v", v.ok(), c.ok)
			}
		})
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
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("E key-2 0 1 7 15")
	f.Close()
	es, err := readLedger(path, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].end != 200 || es[0].outcome != "ok" || es[1].end != 0 || es[1].offset != 7 {
		t.Fatalf("read %+v %+v", es[0], es[1])
	}
}
