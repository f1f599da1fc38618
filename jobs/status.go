package jobs

import "time"

// The defaults of the status reports (Config.StatusTopic,
// Config.StatusInterval).
const (
	DefaultStatusTopic    = "__ordo_status"
	DefaultStatusInterval = 5 * time.Second
)
