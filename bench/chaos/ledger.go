package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A ledger is one worker process's record of every execution it began and
// ended, one line per event, written with O_APPEND and fsynced before the
// job goes on, so that it survives the process being SIGKILLed:
//
//	S <key> <seq> <partition> <offset> <start-ns>
//	E <key> <seq> <partition> <offset> <start-ns> <end-ns> <outcome>
//	C <partition> <offset> <at-ns> [<metadata>]
//	R <partition> <at-ns>
//
// A job writes its S line before it does any work and its E line before it
// returns, and it returns (and so can be committed) only after the E line is
// on disk. A C line is a commit the broker accepted, with ordo's metadata
// (the finished offsets above it); it is written after the commit, so a kill
// between the two loses the line and only makes the checker's bound larger.
// An R line says the worker gave the partition up (a revocation or a stop)
// after its final commit was tried.
// Events of concurrent jobs share one write and one fsync.
type ledger struct {
	f    *os.File
	reqs chan ledgerReq
	done chan struct{}
}

type ledgerReq struct {
	line string
	ack  chan error
}

func openLedger(path string) (*ledger, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &ledger{f: f, reqs: make(chan ledgerReq, 1024), done: make(chan struct{})}
	go l.loop()
	return l, nil
}

func (l *ledger) loop() {
	defer close(l.done)
	var buf []byte
	var acks []chan error
	for req := range l.reqs {
		buf = append(buf[:0], req.line...)
		acks = append(acks[:0], req.ack)
	batch:
		for len(acks) < 512 {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break batch
				}
				buf = append(buf, r.line...)
				acks = append(acks, r.ack)
			default:
				break batch
			}
		}
		_, err := l.f.Write(buf)
		if err == nil {
			err = l.f.Sync()
		}
		for _, a := range acks {
			a <- err
		}
	}
}

// write appends line and returns once it is on disk.
func (l *ledger) write(line string) error {
	ack := make(chan error, 1)
	l.reqs <- ledgerReq{line: line, ack: ack}
	return <-ack
}

func (l *ledger) start(key string, seq, partition int, offset, start int64) error {
	return l.write(fmt.Sprintf("S %s %d %d %d %d\n", key, seq, partition, offset, start))
}

func (l *ledger) end(key string, seq, partition int, offset, start, end int64, outcome string) error {
	return l.write(fmt.Sprintf("E %s %d %d %d %d %d %s\n", key, seq, partition, offset, start, end, outcome))
}

func (l *ledger) commit(partition int, offset, at int64, metadata string) error {
	return l.write(fmt.Sprintf("C %d %d %d %s\n", partition, offset, at, metadata))
}

func (l *ledger) release(partition int, at int64) error {
	return l.write(fmt.Sprintf("R %d %d\n", partition, at))
}

func (l *ledger) close() error {
	close(l.reqs)
	<-l.done
	return l.f.Close()
}

// execution is one run of a job as the ledgers tell it.
type execution struct {
	proc      string
	key       string
	seq       int
	partition int
	offset    int64
	start     int64
	end       int64 // 0 when the ledger has no E line: the process died first
	outcome   string
}

// commit is a commit the broker accepted, as a ledger tells it.
type commit struct {
	proc      string
	partition int
	offset    int64
	at        int64
	metadata  string
}

// release is a partition a worker gave up, as a ledger tells it.
type release struct {
	proc      string
	partition int
	at        int64
}

// readLedger returns the executions in a ledger, keyed by process and start,
// its commits and its releases. A line cut short by a kill (only ever the
// last) is skipped.
func readLedger(path, proc string) ([]*execution, []commit, []release, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	type id struct {
		key   string
		seq   int
		start int64
	}
	byID := map[id]*execution{}
	var out []*execution
	var commits []commit
	var releases []release
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<10) // a commit's metadata is up to 4 KB
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 4 && fs[0] == "C" {
			part, err1 := strconv.Atoi(fs[1])
			off, err2 := strconv.ParseInt(fs[2], 10, 64)
			at, err3 := strconv.ParseInt(fs[3], 10, 64)
			if err1 == nil && err2 == nil && err3 == nil {
				c := commit{proc: proc, partition: part, offset: off, at: at}
				if len(fs) > 4 {
					c.metadata = fs[4]
				}
				commits = append(commits, c)
			}
			continue
		}
		if len(fs) == 3 && fs[0] == "R" {
			part, err1 := strconv.Atoi(fs[1])
			at, err2 := strconv.ParseInt(fs[2], 10, 64)
			if err1 == nil && err2 == nil {
				releases = append(releases, release{proc: proc, partition: part, at: at})
			}
			continue
		}
		if len(fs) < 6 || (fs[0] == "E" && len(fs) < 8) {
			continue
		}
		seq, err1 := strconv.Atoi(fs[2])
		part, err2 := strconv.Atoi(fs[3])
		off, err3 := strconv.ParseInt(fs[4], 10, 64)
		start, err4 := strconv.ParseInt(fs[5], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		k := id{fs[1], seq, start}
		e := byID[k]
		if e == nil {
			e = &execution{proc: proc, key: fs[1], seq: seq, partition: part, offset: off, start: start}
			byID[k] = e
			out = append(out, e)
		}
		if fs[0] == "E" {
			end, err := strconv.ParseInt(fs[6], 10, 64)
			if err != nil {
				continue
			}
			e.end, e.outcome = end, fs[7]
		}
	}
	return out, commits, releases, sc.Err()
}
