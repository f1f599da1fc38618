package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/ordo-go/ordo/internal/ops"
	"github.com/ordo-go/ordo/jobs"
)

func enqueueCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("enqueue", stderr)
	topic := fs.String("topic", "", "the job topic (required)")
	kind := fs.String("kind", "", "the job's kind, as its args' Kind() returns (required)")
	argsJSON := fs.String("args-json", "", "the job's args as one JSON object, e.g. '{\"account\":\"a-1\"}' (required)")
	key := fs.String("key", "", "the record key: the job runs in order with every job of this key")
	partitionKey := fs.String("partition-key", "", "pick the partition by this key without giving the record a key")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *topic == "":
		return fmt.Errorf("%w: --topic is required", errUsage)
	case *kind == "":
		return fmt.Errorf("%w: --kind is required", errUsage)
	case *argsJSON == "":
		return fmt.Errorf("%w: --args-json is required (use '{}' for a job without args)", errUsage)
	}
	// The args are checked before anything connects, so bad input writes
	// nothing.
	jobArgs, err := ops.NewJSONArgs(*kind, *argsJSON)
	if err != nil {
		return fmt.Errorf("--args-json: %w; nothing was enqueued", err)
	}
	var opts []jobs.EnqueueOption
	if *key != "" {
		opts = append(opts, jobs.WithKey(*key))
	}
	if *partitionKey != "" {
		opts = append(opts, jobs.WithPartitionKey(*partitionKey))
	}
	k, err := c.open()
	if err != nil {
		return err
	}
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: k.brokers, Security: k.security, Topic: *topic,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer client.Close()
	info, err := client.Enqueue(ctx, jobArgs, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enqueued %s job %s to %s/%d@%d\n", printable(info.Kind), info.ID, printable(info.Topic), info.Partition, info.Offset)
	return nil
}
