package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// keyMailbox is the mailbox of a key actor. It is protoactor's mailbox
// contract (system messages first, suspension while a failure is
// supervised, a panic escalated to the supervisor) served in bounded turns on
// the handler pool: a turn handles at most turnLimit user messages, then the
// key goes to the back of the pool's queue if it has more. A key with a long
// queue therefore cannot keep a worker to itself, and a key that was waiting
// (a retry due, a hold released) gets a worker within a round of the keys
// ahead of it, not after their whole queues. Posting a message allocates
// nothing.
type keyMailbox struct {
	pool    *workerPool
	invoker actor.MessageInvoker

	mu        sync.Mutex
	user      []any
	userHead  int
	system    []any
	scheduled bool // queued on the pool or in a turn
	suspended bool
}

func (m *keyMailbox) PostUserMessage(msg any) {
	m.mu.Lock()
	m.user = append(m.user, msg)
	m.scheduleLocked()
}

func (m *keyMailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.system = append(m.system, msg)
	m.scheduleLocked()
}

// scheduleLocked queues the mailbox for a turn unless it is queued or in one
// already, and unlocks.
func (m *keyMailbox) scheduleLocked() {
	if m.scheduled {
		m.mu.Unlock()
		return
	}
	m.scheduled = true
	m.mu.Unlock()
	m.pool.scheduleTurn(m)
}

func (m *keyMailbox) RegisterHandlers(invoker actor.MessageInvoker, _ actor.Dispatcher) {
	m.invoker = invoker
}

func (m *keyMailbox) Start() {}

func (m *keyMailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.user) - m.userHead
}

// turnLimit is how many user messages one turn handles.
const turnLimit = 16

// turn handles the system messages waiting and up to turnLimit user
// messages on a pool worker; then it gives the worker up.
func (m *keyMailbox) turn() {
	for handled := 0; ; {
		m.mu.Lock()
		if len(m.system) > 0 {
			msg := m.system[0]
			m.system[0] = nil
			m.system = m.system[1:]
			if len(m.system) == 0 {
				m.system = nil
			}
			m.mu.Unlock()
			m.invokeSystem(msg)
			continue
		}
		if m.suspended || m.userHead == len(m.user) {
			m.scheduled = false
			m.mu.Unlock()
			return
		}
		msg := m.user[m.userHead]
		m.user[m.userHead] = nil
		m.userHead++
		if m.userHead == len(m.user) {
			m.userHead = 0
			if cap(m.user) > 64 {
				m.user = nil // a burst is over: keep no large queue alive
			} else {
				m.user = m.user[:0]
			}
		}
		m.mu.Unlock()
		m.invokeUser(msg)
		if handled++; handled < turnLimit {
			continue
		}
		m.mu.Lock()
		more := len(m.system) > 0 || (!m.suspended && m.userHead < len(m.user))
		if !more {
			m.scheduled = false
		}
		m.mu.Unlock()
		if more {
			m.pool.scheduleTurn(m)
		}
		return
	}
}

func (m *keyMailbox) invokeSystem(msg any) {
	switch msg.(type) {
	case *actor.SuspendMailbox:
		m.setSuspended(true)
	case *actor.ResumeMailbox:
		m.setSuspended(false)
	default:
		m.invoke(msg, m.invoker.InvokeSystemMessage)
	}
}

func (m *keyMailbox) invokeUser(msg any) { m.invoke(msg, m.invoker.InvokeUserMessage) }

func (m *keyMailbox) setSuspended(s bool) {
	m.mu.Lock()
	m.suspended = s
	m.mu.Unlock()
}

// invoke hands msg to the actor. A panic in the actor itself goes to its
// supervisor, as protoactor's own mailbox does: this is the supervision
// contract of a mailbox, not a job's error (package jobs turns those into
// outcomes before they reach the actor).
func (m *keyMailbox) invoke(msg any, to func(any)) {
	defer func() {
		if reason := recover(); reason != nil {
			m.invoker.EscalateFailure(reason, msg)
		}
	}()
	to(msg)
}
