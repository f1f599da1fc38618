// Package testhook lets jobstest, and the bench, reach parts of package jobs
// that are not jobs' API: jobs sets Prepare when it is initialised. It takes
// and returns jobs' types as any, since this package cannot import jobs.
package testhook

import "github.com/ordo-go/ordo/kafka"

// Prepare builds the record Client.Enqueue would send for args (a
// jobs.JobArgs) and opts (a []jobs.EnqueueOption, or nil), with topic as
// ClientConfig.Topic, without sending it. info is a jobs.JobInfo. Its errors
// wrap jobs.ErrInvalidEnqueue, as Enqueue's do.
var Prepare func(topic string, args any, opts any) (msg kafka.Message, info any, err error)
