package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/ordo-go/ordo/internal/ops"
	"github.com/ordo-go/ordo/internal/status"
)

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("status", stderr)
	topic := fs.String("status-topic", status.DefaultTopic, "the servers' status topic (jobs.Config.StatusTopic)")
	group := fs.String("group", "", "show only this consumer group")
	errorsN := fs.Int("errors", 10, "how many of the most recent job errors to show")
	if err := parse(fs, args); err != nil {
		return err
	}
	k, err := c.open()
	if err != nil {
		return err
	}
	reader := ops.NewStatusReader(k.admin, *topic)
	if err := reader.Refresh(ctx); err != nil {
		return err
	}
	now := time.Now()
	var members []ops.Member
	for _, m := range reader.Members(now) {
		if *group == "" || m.Group == *group {
			members = append(members, m)
		}
	}
	printStatus(stdout, members, now, *errorsN)
	return nil
}

// printStatus writes the terminal tables of `ordo status`.
func printStatus(w io.Writer, members []ops.Member, now time.Time, errorsN int) {
	if len(members) == 0 {
		fmt.Fprintln(w, "no servers have reported")
		return
	}
	o := ops.Summarize(members)
	fmt.Fprintf(w, "%d groups, %d members live, %d gone, %d partitions, total lag %d\n", o.Groups, o.Members, o.Gone, o.Partitions, o.Lag)
	fmt.Fprintf(w, "jobs: %d processed, %d failed, %d dead-lettered; now %.1f/s processed, %.1f/s failed\n\n",
		o.Processed, o.Failed, o.DeadLettered, o.ProcessedRate, o.FailedRate)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMEMBER\tHOST\tVERSION\tUPTIME\tLAST REPORT\tSTATE\tPARTITIONS\tREBALANCES")
	for _, m := range members {
		state := "live"
		if m.Gone {
			state = "GONE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s ago\t%s\t%d\t%d\n", cell(m.Group, nameWidth), cell(m.Member, nameWidth), cell(m.Host, nameWidth), cell(m.OrdoVersion, nameWidth),
			m.Uptime(), m.Age(now), state, len(m.Partitions), m.Rebalances)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tMEMBER\tCOMMITTED\tHIGH WATERMARK\tLAG\tBUFFERED\tPREFETCHED\tIN FLIGHT\tKEY ACTORS\tGENERATION")
	for _, p := range ops.PartitionRows(members) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", cell(p.Group, nameWidth), cell(p.Topic, nameWidth), p.Partition.Partition, cell(p.Member, nameWidth),
			offset(p.Committed), offset(p.HighWatermark), offset(p.Lag), p.Buffered, p.Prefetched, p.InFlight, p.KeyActors, p.Generation)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMEMBER\tKIND\tPROCESSED\tFAILED\tRETRIED\tDEAD-LETTERED\tPROCESSED/S\tFAILED/S")
	for _, m := range members {
		if m.Gone {
			continue
		}
		for _, k := range m.Kinds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.1f\t%.1f\n", cell(m.Group, nameWidth), cell(m.Member, nameWidth), cell(k.Kind, nameWidth),
				k.Processed, k.Failed, k.Retried, k.DeadLettered, k.ProcessedRate, k.FailedRate)
		}
	}
	tw.Flush()

	errs := ops.RecentErrors(members, errorsN)
	if len(errs) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tGROUP\tKIND\tJOB ID\tKEY\tAT\tATTEMPT\tDEAD-LETTERED\tERROR")
	for _, e := range errs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s/%d@%d\t%d\t%t\t%s\n", e.At.Local().Format(time.TimeOnly), cell(e.Group, nameWidth), cell(e.Kind, nameWidth),
			cell(e.JobID, nameWidth), cell(e.Key, 40), cell(e.Topic, nameWidth), e.Partition, e.Offset, e.Attempt, e.DeadLettered, cell(e.Message, 100))
	}
	tw.Flush()
}

// offset shows -1 (not known yet) as "-".
func offset(v int64) string {
	if v < 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}
