package main

import (
	"syscall"
	"time"
)

const blockingSleepWorks = true

// blockingSleep sleeps in the nanosleep system call, so its OS thread is
// blocked the way cgo calls and file I/O block it; time.Sleep parks only
// the goroutine. A signal (the runtime preempts with SIGURG) interrupts the
// call; it goes on with the time that remained.
func blockingSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		if err := syscall.Nanosleep(&ts, &rem); err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
