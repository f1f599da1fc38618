// Package topics checks, when a server starts, that the topics it needs
// exist, and creates the missing ones when told how. It asks the brokers
// again with a back-off while they cannot be reached or do not answer, so a
// service can start beside its brokers. Package jobs uses it from
// Server.Start and says which topics a server needs; this package knows
// nothing of jobs.
package topics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ordo-go/ordo/internal/backoff"
	"github.com/ordo-go/ordo/kafka"
	"github.com/ordo-go/ordo/supervision"
)

// Spec is how a missing topic is created.
type Spec struct {
	Partitions, ReplicationFactor int
	Configs                       map[string]string
}

// Config says which topics to check and how to create the missing ones.
type Config struct {
	Admin *kafka.Admin
	// Brokers are named in the errors and the log lines.
	Brokers []string
	// Need are the topics that must exist.
	Need []string
	// Schedules are schedules topics, asked for whether in Need or not;
	// those that Ensure creates are compacted.
	Schedules []string
	// Create, when set, is how the missing topics of Need are created;
	// nil: they are a *MissingError.
	Create *Spec
	// Backoff is the wait between tries at brokers that cannot be reached
	// or do not answer.
	Backoff supervision.Backoff
	Logger  *slog.Logger
}

// MissingError is Ensure's error when topics of Config.Need do not exist and
// Config.Create is not set.
type MissingError struct{ Topics []string }

func (e *MissingError) Error() string {
	return "topics: missing on the broker: " + strings.Join(e.Topics, ", ")
}

// Ensure checks cfg.Need and cfg.Schedules, creating the missing topics of
// Need when cfg.Create is set, and returns the schedules topics that exist
// now. A broker that cannot be reached yet (a service starting beside it)
// or does not answer is asked again with cfg.Backoff until ctx ends; one
// that answers with a refusal (a failed login) is not. Its error for a
// failure talking to the brokers names them, and wraps both why it stopped
// trying (ctx's cause), if it did, and the last failure.
func Ensure(ctx context.Context, cfg Config) ([]string, error) {
	ask := slices.Clone(cfg.Need)
	for _, t := range cfg.Schedules {
		if !slices.Contains(ask, t) {
			ask = append(ask, t)
		}
	}
	var have map[string]int
	for attempt := 1; ; attempt++ {
		var err error
		if have, err = askPartitions(ctx, cfg.Admin, attempt, ask); err == nil {
			break
		}
		var netErr *net.OpError
		if ctx.Err() != nil || !errors.As(err, &netErr) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, brokersError(ctx, cfg.Brokers, err)
		}
		wait := cfg.Backoff.Delay(attempt)
		cfg.Logger.Warn("ordo: checking the topics failed; retrying", "brokers", cfg.Brokers, "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, brokersError(ctx, cfg.Brokers, err)
		}
	}
	var exist []string
	for _, st := range cfg.Schedules {
		if _, ok := have[st]; ok || slices.Contains(cfg.Need, st) {
			exist = append(exist, st)
		}
	}
	var missing []string
	for _, t := range cfg.Need {
		if _, ok := have[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return exist, nil
	}
	spec := cfg.Create
	if spec == nil {
		return nil, &MissingError{Topics: missing}
	}
	for _, name := range missing {
		t := kafka.Topic{Name: name, Partitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor, Configs: spec.Configs}
		if slices.Contains(cfg.Schedules, name) {
			// A schedules topic keeps the latest record of each job
			// id: compaction drops dispatched and cancelled jobs.
			t.Configs = maps.Clone(spec.Configs)
			if t.Configs == nil {
				t.Configs = map[string]string{}
			}
			t.Configs["cleanup.policy"] = "compact"
		}
		// One at a time: a topic that another process created meanwhile
		// (servers of one group starting together) is no error.
		if err := cfg.Admin.CreateTopics(ctx, t); err != nil && !errors.Is(err, kafka.ErrTopicExists) {
			return nil, brokersError(ctx, cfg.Brokers, err)
		}
	}
	cfg.Logger.Info("ordo: created topics", "topics", missing, "partitions", spec.Partitions,
		"replication_factor", spec.ReplicationFactor)
	return exist, nil
}

// Each try at the topics' metadata waits longer than the one before, from
// firstTryTimeout to lastTryTimeout (the admin client's own bound): a broker
// that says nothing is reported within about a second, and a slow first
// connection (TLS and SASL to a distant cluster) still gets through on a
// later try.
const (
	firstTryTimeout = time.Second
	lastTryTimeout  = 10 * time.Second
)

// askPartitions is one try at the partition counts of topics.
func askPartitions(ctx context.Context, admin *kafka.Admin, attempt int, topics []string) (map[string]int, error) {
	timeout := backoff.Delay(firstTryTimeout, lastTryTimeout, attempt)
	tryCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	have, err := admin.Partitions(tryCtx, topics...)
	if err != nil && ctx.Err() == nil && tryCtx.Err() != nil {
		err = fmt.Errorf("no answer within %v: %w", timeout, err)
	}
	return have, err
}

// brokersError is Ensure's error for a failure talking to brokers.
func brokersError(ctx context.Context, brokers []string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("asking brokers %s for the topics: %w (last try: %w)", strings.Join(brokers, ","), context.Cause(ctx), err)
	}
	return fmt.Errorf("asking brokers %s for the topics: %w", strings.Join(brokers, ","), err)
}
