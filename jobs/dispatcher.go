package jobs

import "time"

// DefaultScheduleGroupSuffix named the consumer group in which servers
// dispatched scheduled jobs before the schedules partitions joined the
// server's own group: Config.Group + this. A schedules partition that has no
// committed offset in the server's group starts where that group left it.
const DefaultScheduleGroupSuffix = ".schedule"

// ScheduleStats is what Server.Schedules reports per schedules partition the
// server dispatches.
type ScheduleStats struct {
	Topic     string
	Partition int
	// Pending is how many jobs wait to be dispatched.
	Pending int
	// NextDue is when the earliest of them is due; zero when none is.
	NextDue time.Time
	// Reading is true until the dispatcher has read the partition up to
	// its end as of the assignment; it dispatches nothing until then.
	Reading bool
}
