// Package enqueue is the machinery behind jobs.Client: it checks an enqueue
// call and its options, builds the job's record (envelope, headers, key or
// partition key) or, for a job to run later, its schedule record, writes the
// records through the client's Enqueue middleware, and writes and waits on
// Cancel's tombstones. A server's periodic jobs are checked here, and the
// jobs they fire built and written here too; jobstest and the bench build
// their records with Prepare, the same code.
//
// Package jobs is its face and imports it, never the other way: the
// middleware chain comes in as a Chain, the trace context as an inject func,
// and jobs' EnqueueOption is a func over Options.
package enqueue
