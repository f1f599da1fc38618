//go:build !linux

package main

import "time"

// blockingSleepWorks is false where the bench does not call nanosleep(2);
// S3 then leaves its blocking variant out.
const blockingSleepWorks = false

func blockingSleep(time.Duration) { panic("bench: blockingSleep needs linux") }
