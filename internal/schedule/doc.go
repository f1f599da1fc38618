// Package schedule dispatches due jobs from the schedules partitions: it
// keeps an index of each partition's pending jobs, sends each one to its job
// topic when it is due (or its record to the dead-letter topic when it is
// not a valid schedule), answers cancels, tombstones what it resolved, and
// fires the periodic jobs from partition 0 of the first schedules topic. It
// also owns the schedules topics' record format, which package jobs writes
// (and reads for a cancel's answer), and the periodic jobs' specs.
//
// The schedules partitions are the server's group's: the record server
// assigns, revokes and commits them and hands them to a Dispatcher. It knows
// nothing of jobs' types: Config gives it the producer, the back-off, how
// to dead-letter a record, how to build and enqueue a periodic job's run,
// and where to count what it did. Package jobs imports it, never the other
// way.
package schedule
