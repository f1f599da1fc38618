// Package testhook lets jobstest reach parts of package jobs that are not
// jobs' API: jobs sets Work and WorkBatch when it is initialised.
// They take and return jobs' types as any, since this package cannot import
// jobs.
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

// WorkBatch is Work for a batch worker: it decodes the job records recs (one
// key's, in order) and runs the worker of their kind on them in one batch.
// It returns the worker's error as returned (a jobs.BatchErrors included),
// or why a record could not reach the worker.
var WorkBatch func(ctx context.Context, workers any, recs []*kafka.Record) error
