package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ordo-go/ordo/internal/ops"
)

// dlqFlags are the flags of the dlq subcommands.
func dlqFlags(name string, stderr io.Writer) (*flag.FlagSet, *conn, *string) {
	fs, c := newFlags("dlq "+name, stderr)
	topic := fs.String("topic", "", "the dead-letter topic (jobs.Config.DeadLetterTopic; by default the first job topic + \".dlq\")")
	return fs, c, topic
}

func readDeadLetters(ctx context.Context, c *conn, topic string) ([]ops.DeadLetter, *kafkaConn, error) {
	if topic == "" {
		return nil, nil, fmt.Errorf("%w: --topic is required", errUsage)
	}
	k, err := c.open()
	if err != nil {
		return nil, nil, err
	}
	dls, err := ops.ReadDeadLetters(ctx, k.admin, topic)
	return dls, k, err
}

func dlqListCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, topic := dlqFlags("list", stderr)
	kind := fs.String("kind", "", "show only dead letters of this kind")
	pending := fs.Bool("pending", false, "hide the dead letters that were replayed")
	if err := parse(fs, args); err != nil {
		return err
	}
	dls, _, err := readDeadLetters(ctx, c, *topic)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tKIND\tKEY\tSOURCE\tATTEMPTS\tREPLAYED\tSIZE\tREASON")
	shown, replayed := 0, 0
	for _, d := range dls {
		if d.Replayed() {
			replayed++
		}
		if (*kind != "" && d.Kind != *kind) || (*pending && d.Replayed()) {
			continue
		}
		shown++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%d@%d\t%d\t%d\t%d\t%s\n", d.ID(), d.Time.Local().Format(time.DateTime), cell(d.Kind, nameWidth),
			cell(string(d.Key), 40), cell(d.SourceTopic, nameWidth), d.SourcePartition, d.SourceOffset, d.Attempts, len(d.ReplayedAt),
			len(d.Value), cell(d.Reason, 80))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d dead letters shown; %d in %s, %d of them replayed\n", shown, len(dls), printable(*topic), replayed)
	return nil
}

func dlqShowCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, topic := dlqFlags("show", stderr)
	showPayload := fs.Bool("show-payload", false, "print the job's args as JSON (by default only its size and kind)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: ordo dlq show --topic T <partition>/<offset>", errUsage)
	}
	partition, offset, err := ops.ParseID(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	dls, _, err := readDeadLetters(ctx, c, *topic)
	if err != nil {
		return err
	}
	for _, d := range dls {
		if d.Partition != partition || d.Offset != offset {
			continue
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "id\t%s/%s\n", cell(*topic, -1), d.ID())
		fmt.Fprintf(tw, "time\t%s\n", d.Time.Local().Format(time.RFC3339))
		fmt.Fprintf(tw, "kind\t%s\n", cell(d.Kind, -1))
		fmt.Fprintf(tw, "job id\t%s\n", cell(d.JobID, -1))
		fmt.Fprintf(tw, "key\t%q\n", d.Key)
		fmt.Fprintf(tw, "source\t%s/%d@%d (group %s)\n", cell(d.SourceTopic, -1), d.SourcePartition, d.SourceOffset, cell(d.SourceGroup, -1))
		fmt.Fprintf(tw, "attempts\t%d\n", d.Attempts)
		fmt.Fprintf(tw, "replays before\t%d\n", d.Replays)
		fmt.Fprintf(tw, "replayed\t%d times\n", len(d.ReplayedAt))
		fmt.Fprintf(tw, "reason\t%s\n", cell(d.Reason, -1))
		fmt.Fprintf(tw, "payload\t%d bytes\n", len(d.Value))
		tw.Flush()
		fmt.Fprintln(stdout, "headers:")
		for _, h := range d.Headers {
			fmt.Fprintf(stdout, "  %s: %q\n", cell(h.Key, -1), h.Value)
		}
		if *showPayload {
			fmt.Fprintf(stdout, "args:\n%s\n", printable(ops.Payload(d.Value)))
		}
		return nil
	}
	return fmt.Errorf("no dead letter %d/%d in %q", partition, offset, *topic)
}

func dlqReplayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, topic := dlqFlags("replay", stderr)
	all := fs.Bool("all", false, "replay every dead letter not replayed yet")
	partition := fs.Int("partition", -1, "replay only this partition of the dead-letter topic (with --from and --to)")
	from := fs.Int64("from", 0, "with --partition: the first offset to replay")
	to := fs.Int64("to", -1, "with --partition: the last offset to replay, inclusive (default: the end)")
	kind := fs.String("kind", "", "replay only dead letters of this kind")
	again := fs.Bool("include-replayed", false, "replay dead letters that were replayed before, too")
	dryRun := fs.Bool("dry-run", false, "list what would be replayed and write nothing")
	if err := parse(fs, args); err != nil {
		return err
	}
	sel := ops.Selection{All: *all, Kind: *kind, IDs: fs.Args(), From: *from, To: *to, IncludeReplayed: *again}
	if *partition >= 0 {
		sel.Partition = partition
	}
	dls, k, err := readDeadLetters(ctx, c, *topic)
	if err != nil {
		return err
	}
	picked, err := ops.Select(dls, sel)
	if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if *dryRun {
		for _, d := range picked {
			if _, err := ops.ReplayMessage(&d); err != nil {
				fmt.Fprintf(stdout, "would skip %s: %s\n", d.ID(), cell(err.Error(), 200))
				continue
			}
			fmt.Fprintf(stdout, "would replay %s (kind %s, key %s) to %s\n", d.ID(), cell(d.Kind, nameWidth), cell(strconv.Quote(string(d.Key)), 60),
				cell(d.SourceTopic, nameWidth))
		}
		fmt.Fprintf(stdout, "dry run: %d dead letters would be replayed; nothing was written\n", len(picked))
		return nil
	}
	if len(picked) == 0 {
		fmt.Fprintln(stdout, "no dead letter matches; nothing was written")
		return nil
	}
	p, err := k.producer()
	if err != nil {
		return err
	}
	defer p.Close()
	done, err := ops.Replay(ctx, p, picked, who())
	for _, r := range done {
		fmt.Fprintf(stdout, "replayed %s (kind %s, key %s) to %s/%d@%d\n", r.DeadLetter.ID(), cell(r.DeadLetter.Kind, nameWidth),
			cell(strconv.Quote(string(r.DeadLetter.Key)), 60), cell(r.To.Topic, nameWidth), r.To.Partition, r.To.Offset)
	}
	fmt.Fprintf(stdout, "replayed %d of %d dead letters\n", len(done), len(picked))
	return err
}

// who names the operator in replay markers: user@host.
func who() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "ordo-cli:" + name + "@" + host
}
