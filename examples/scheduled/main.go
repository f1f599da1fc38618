// Command scheduled runs jobs later: a reminder due in two seconds, another
// one cancelled before it is due, and a third cancelled too late.
//
//	go run ./examples/scheduled            # embedded broker
//	KAFKA_BROKERS=127.0.0.1:9092 go run ./examples/scheduled
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// ReminderArgs is a job: remind a user of something. Reminders of one user
// run one at a time, in order of their dispatch.
type ReminderArgs struct {
	User string `msgpack:"user"`
	Text string `msgpack:"text"`
}

func (ReminderArgs) Kind() string { return "reminder" }

func (a ReminderArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.User} }

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scheduled:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	topic := "reminders-" + rand.Text()[:8]

	type reminded struct {
		text string
		late time.Duration
	}
	ran := make(chan reminded, 3)
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[ReminderArgs]) error {
		ran <- reminded{job.Args.Text, time.Since(job.EnqueuedAt)}
		return nil
	}))
	if err != nil {
		return err
	}

	// SchedulesOn with CreateTopics: Start creates the schedules topic
	// (topic + ".schedule", compacted) beside the topic and its dead-letter
	// topic, and the server dispatches the jobs waiting there when due.
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "reminders-" + topic, Topics: []string{topic}, Workers: workers,
		CreateTopics: &jobs.TopicSpec{Partitions: 3, ReplicationFactor: 1},
		Schedules:    jobs.SchedulesOn,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, server.Stop(context.Background())) }()
	if err := server.Start(ctx); err != nil {
		return err
	}
	// Ready: the server runs its partitions, and its dispatcher has read
	// the schedules topic, so a Cancel gets an answer.
	select {
	case <-server.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()

	// Due in two seconds.
	info, err := client.Enqueue(ctx, ReminderArgs{User: "ada", Text: "renew your plan"}, jobs.WithDelay(2*time.Second))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scheduled %q for %s\n", "renew your plan", info.RunAt.Format(time.TimeOnly))

	// Due in three seconds, and cancelled now: it never runs.
	info, err = client.Enqueue(ctx, ReminderArgs{User: "ada", Text: "never mind"}, jobs.WithRunAt(time.Now().Add(3*time.Second)))
	if err != nil {
		return err
	}
	outcome, err := client.Cancel(ctx, info.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cancel before due: %s\n", outcome)

	// Due at once-ish; cancelled after it ran: too late, and Cancel says so.
	info, err = client.Enqueue(ctx, ReminderArgs{User: "grace", Text: "welcome"}, jobs.WithDelay(100*time.Millisecond))
	if err != nil {
		return err
	}
	for range 2 {
		select {
		case r := <-ran:
			fmt.Fprintf(out, "reminded: %s (%.1f s after enqueue)\n", r.text, r.late.Seconds())
		case <-ctx.Done():
			return fmt.Errorf("reminders did not run: %w", ctx.Err())
		}
	}
	if outcome, err = client.Cancel(ctx, info.ID); err != nil {
		return err
	}
	fmt.Fprintf(out, "cancel after dispatch: %s\n", outcome)
	// Past the cancelled reminder's time, nothing else ran.
	select {
	case r := <-ran:
		return fmt.Errorf("the cancelled reminder %q ran", r.text)
	case <-time.After(time.Until(info.EnqueuedAt.Add(3500 * time.Millisecond))):
	}
	return nil
}
