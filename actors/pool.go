package actors

import "sync"

// workerPool is the protoactor Dispatcher of key actors: a fixed set of
// long-lived goroutines that run the mailboxes scheduled on it. A handler runs
// inside its key actor's mailbox turn, so the pool's size is the process's
// concurrency limit, and a job costs no goroutine start and no stack growth.
// A key that waits (in back-off, held, or idle) is a mailbox and nothing
// more: it holds no goroutine and no slot.
//
// Schedule never blocks: protoactor calls it from the sender's goroutine,
// and a supervisor must never wait for a handler to finish.
type workerPool struct {
	mu      sync.Mutex
	wake    sync.Cond
	queue   []func() // a ring: n turns from head
	head, n int
	idle    int // workers waiting for a turn
	waking  int // idle workers signalled, not yet running
	closed  bool
}

// poolThroughput is how many messages a mailbox turn handles before it yields
// its thread to the Go scheduler (protoactor's Gosched); the turn goes on
// after that, on the same worker.
const poolThroughput = 64

func newWorkerPool(size int) *workerPool {
	p := &workerPool{queue: make([]func(), 64)}
	p.wake.L = &p.mu
	for range size {
		go p.work()
	}
	return p
}

// Schedule implements actor.Dispatcher.
func (p *workerPool) Schedule(turn func()) {
	p.mu.Lock()
	if p.n == len(p.queue) {
		grown := make([]func(), 2*len(p.queue))
		for i := range p.n {
			grown[i] = p.queue[(p.head+i)%len(p.queue)]
		}
		p.queue, p.head = grown, 0
	}
	p.queue[(p.head+p.n)%len(p.queue)] = turn
	p.n++
	// Wake a worker only when none already woken will take this turn:
	// under load the running workers drain the queue without a wake-up.
	if p.idle > p.waking && p.n > p.waking {
		p.waking++
		p.wake.Signal()
	}
	p.mu.Unlock()
}

// Throughput implements actor.Dispatcher.
func (p *workerPool) Throughput() int { return poolThroughput }

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
		turn := p.queue[p.head]
		p.queue[p.head] = nil
		p.head = (p.head + 1) % len(p.queue)
		p.n--
		p.mu.Unlock()
		turn()
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
