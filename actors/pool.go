package actors

import (
	"sync"
	"time"
)

// workerPool runs the key actors' mailbox turns on a fixed set of long-lived
// goroutines. A handler runs inside its key actor's turn, so the pool's size
// is the process's concurrency limit, and a job costs no goroutine start and
// no stack growth. A key that waits (in back-off, held, or idle) is a
// mailbox and nothing more: it holds no goroutine and no slot.
//
// scheduleTurn never blocks: it is called from the sender's goroutine, and a
// supervisor must never wait for a handler to finish.
type workerPool struct {
	mu      sync.Mutex
	wake    sync.Cond
	queue   []turner // a ring: n turns from head
	head, n int
	idle    int // workers waiting for a turn
	waking  int // idle workers signalled, not yet running
	closed  bool
}

// turner is what the pool runs: a mailbox's turn.
type turner interface{ turn() }

func newWorkerPool(size int) *workerPool {
	p := &workerPool{queue: make([]turner, 64)}
	p.wake.L = &p.mu
	for range size {
		go p.work()
	}
	return p
}

// scheduleTurn queues a mailbox's turn.
func (p *workerPool) scheduleTurn(t turner) {
	p.mu.Lock()
	if p.n == len(p.queue) {
		grown := make([]turner, 2*len(p.queue))
		for i := range p.n {
			grown[i] = p.queue[(p.head+i)%len(p.queue)]
		}
		p.queue, p.head = grown, 0
	}
	p.queue[(p.head+p.n)%len(p.queue)] = t
	p.n++
	// Wake a worker only when none already woken will take this turn:
	// under load the running workers drain the queue without a wake-up.
	if p.idle > p.waking && p.n > p.waking {
		p.waking++
		p.wake.Signal()
	}
	p.mu.Unlock()
}

func (p *workerPool) work() {
	p.mu.Lock()
	for {
		for p.n == 0 {
			if p.closed {
				p.mu.Unlock()
				return
			}
			p.idle++
			p.wake.Wait()
			p.idle--
			if p.waking > 0 {
				p.waking--
			}
		}
		t := p.queue[p.head]
		p.queue[p.head] = nil
		p.head = (p.head + 1) % len(p.queue)
		p.n--
		p.mu.Unlock()
		t.turn()
		p.mu.Lock()
	}
}

// close lets the workers finish the turns already scheduled and stop. It
// does not wait for them: a handler that ignores its cancelled context would
// hold close forever.
func (p *workerPool) close() {
	p.mu.Lock()
	p.closed = true
	p.wake.Broadcast()
	p.mu.Unlock()
}

// supervisorLoop is the Dispatcher of one partition supervisor: a goroutine
// of its own that runs the supervisor's mailbox turns (so a turn costs no
// goroutine start, and no handler can hold it up), and that paces how often
// the supervisor counts finished records. Key actors report what finished
// into the partition's outcome list and kick the loop; under load the loop
// lets a short while pass between two counts, so one wake-up of the
// supervisor counts many records instead of one. Every wake-up of a
// goroutine delays the timers of the Go runtime a little, and handlers that
// sleep feel it.
type supervisorLoop struct {
	turns chan func()
	kick  chan struct{}
	quit  chan struct{}
	count func() // asks the supervisor to count the outcomes
	// urgent tells when a count must not wait for the pace.
	urgent func() bool
}

// countPace is the least time between two counts of outcomes under load,
// unless a count is urgent: short against a commit interval, long against a
// job.
const countPace = 5 * time.Millisecond

func newSupervisorLoop() *supervisorLoop {
	return &supervisorLoop{turns: make(chan func(), 1), kick: make(chan struct{}, 1), quit: make(chan struct{})}
}

func (l *supervisorLoop) run() {
	pace := time.NewTimer(time.Hour)
	pace.Stop()
	var last time.Time
	pacing := false
	for {
		select {
		case turn := <-l.turns:
			turn()
		case <-l.kick:
			if wait := countPace - time.Since(last); wait > 0 && !l.urgent() {
				if !pacing {
					pacing = true
					pace.Reset(wait)
				}
				continue
			}
			last = time.Now()
			l.count()
		case <-pace.C:
			pacing = false
			last = time.Now()
			l.count()
		case <-l.quit:
			pace.Stop()
			return
		}
	}
}

// Schedule implements actor.Dispatcher. A mailbox schedules one turn at a
// time, so the send never waits.
func (l *supervisorLoop) Schedule(turn func()) {
	select {
	case l.turns <- turn:
	case <-l.quit: // the supervisor has stopped: nothing runs here any more
	}
}

// Throughput implements actor.Dispatcher.
func (l *supervisorLoop) Throughput() int { return 300 }

// outcomeKick tells the loop that outcomes wait to be counted.
func (l *supervisorLoop) outcomeKick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// stop ends the loop; the supervisor calls it from its last turn.
func (l *supervisorLoop) stop() { close(l.quit) }
