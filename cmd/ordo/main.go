// Command ordo operates ordo job servers through Kafka alone: the status of
// every group, member and partition, the dead letters (browse, show,
// replay), enqueueing a job from JSON, and a web dashboard.
//
//	ordo status  --brokers host:9092
//	ordo dlq list    --brokers host:9092 --topic jobs.dlq
//	ordo dlq show    --brokers host:9092 --topic jobs.dlq 0/12
//	ordo dlq replay  --brokers host:9092 --topic jobs.dlq --kind charge --dry-run
//	ordo enqueue --brokers host:9092 --topic jobs --kind charge --args-json '{"account":"a-1"}' --key a-1
//	ordo web     --brokers host:9092 --listen 127.0.0.1:8080 --auth bearer:$TOKEN
//
// Every subcommand takes --brokers and the TLS and SASL flags (see
// `ordo help`). It needs no database: servers publish their status to a
// compacted topic (jobs.Config.StatusTopic), and dead letters are records of
// their topic.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks an error in how the command was called: exit status 2.
var errUsage = errors.New("usage")

const usage = `ordo operates ordo job servers through Kafka.

Usage:
  ordo status                      groups, members, partitions, lag, rates, errors
  ordo dlq list    --topic T       the dead letters of topic T
  ordo dlq show    --topic T ID    one dead letter (ID is <partition>/<offset>)
  ordo dlq replay  --topic T (--all | --partition P [--from O] [--to O] | --kind K | ID...) [--dry-run]
  ordo enqueue     --topic T --kind K --args-json JSON [--key KEY | --partition-key KEY]
  ordo web         [--listen 127.0.0.1:8080] [--auth bearer:TOKEN|basic:USER:PASS] [--read-only] [--show-payloads]

Every subcommand takes the connection flags; "ordo <subcommand> -h" lists all
of its flags:
  --brokers host:port,...          (env ORDO_BROKERS; default 127.0.0.1:9092)
  --tls, --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name NAME, --tls-insecure
  --sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512, --sasl-username USER,
  --sasl-password PASS             (env ORDO_SASL_PASSWORD, which keeps it out of ps)
`

// run is the command: args without the program name. It returns the exit
// status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	out, errOut := &terminalWriter{w: stdout}, &terminalWriter{w: stderr}
	defer out.Flush()
	defer errOut.Flush()
	stdout, stderr = out, errOut
	err := dispatch(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "ordo: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "ordo: %v\n", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no subcommand", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "status":
		return statusCmd(ctx, rest, stdout, stderr)
	case "dlq":
		if len(rest) == 0 {
			return fmt.Errorf("%w: ordo dlq list|show|replay", errUsage)
		}
		switch rest[0] {
		case "list":
			return dlqListCmd(ctx, rest[1:], stdout, stderr)
		case "show":
			return dlqShowCmd(ctx, rest[1:], stdout, stderr)
		case "replay":
			return dlqReplayCmd(ctx, rest[1:], stdout, stderr)
		}
		return fmt.Errorf("%w: ordo dlq %s: want list, show or replay", errUsage, rest[0])
	case "enqueue":
		return enqueueCmd(ctx, rest, stdout, stderr)
	case "web":
		return webCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown subcommand %q", errUsage, cmd)
}
