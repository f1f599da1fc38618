// Package testhook lets jobstest run a worker through package jobs' own
// executor without the executor becoming part of jobs' API: jobs sets Work
// when it is initialised.
package testhook

import (
	"context"

	"github.com/ordo-go/ordo/kafka"
)

// Work decodes the job record r as a Server would, finds its worker in
// workers (a *jobs.Workers), and runs it as attempt: args decoded, the
// worker's timeout applied, a panic turned into an error. It returns the
// worker's error, or why the record could not reach a worker.
var Work func(ctx context.Context, workers any, r *kafka.Record, attempt int) error
