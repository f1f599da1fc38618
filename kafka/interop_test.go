package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/kafka"
)

// javaConsumer is testdata/interop/CooperativeConsumer.java running in a
// JVM: a Java kafka-clients consumer with the cooperative-sticky assignor.
type javaConsumer struct {
	stdin io.WriteCloser
	cmd   *exec.Cmd
	mu    sync.Mutex
	owned []int
	lines []string
}

// kafkaClasspath is the jar directory scripts/kafka.sh filled for the
// broker, which holds kafka-clients; "" when there is none.
func kafkaClasspath() string {
	dir := os.Getenv("ORDO_KAFKA_CACHE")
	if dir == "" {
		home, _ := os.UserHomeDir()
		matches, _ := filepath.Glob(filepath.Join(home, ".cache", "ordo-kafka", "*", "lib", "kafka-clients-*.jar"))
		if len(matches) == 0 {
			return ""
		}
		return filepath.Join(filepath.Dir(matches[0]), "*")
	}
	return filepath.Join(dir, "lib", "*")
}

func startJava(t *testing.T, brokers []string, group, topic string) *javaConsumer {
	t.Helper()
	java, err := exec.LookPath("java")
	cp := kafkaClasspath()
	if err != nil || cp == "" {
		t.Skip("needs java and the kafka-clients jar that make kafka-up fetches")
	}
	j := &javaConsumer{}
	j.cmd = exec.Command(java, "-cp", cp, filepath.Join("testdata", "interop", "CooperativeConsumer.java"),
		strings.Join(brokers, ","), group, topic)
	if j.stdin, err = j.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := j.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	j.cmd.Stderr = io.Discard
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			j.mu.Lock()
			j.lines = append(j.lines, line)
			if rest, ok := strings.CutPrefix(line, "OWNED "); ok {
				j.owned = parseInts(rest)
			}
			j.mu.Unlock()
		}
	}()
	t.Cleanup(func() { j.stop() })
	return j
}

// stop closes the consumer's stdin: it leaves the group and exits.
func (j *javaConsumer) stop() {
	if j.stdin != nil {
		_ = j.stdin.Close()
		j.stdin = nil
		_ = j.cmd.Wait()
	}
}

func (j *javaConsumer) partitions() []int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.owned)
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '[' || r == ']' || r == ',' || r == ' ' }) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// An ordo member and a Java consumer with cooperative-sticky share a group:
// the partitions split between them, and rebalances complete both ways,
// whichever of the two leads the group.
func TestCooperativeInteropWithJavaConsumers(t *testing.T) {
	// Most of it is a JVM compiling and starting its consumer, and groups
	// settling: nothing here measures time, so it runs beside the others.
	t.Parallel()
	env := kafkatest.New(t)
	for _, javaFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("java_leads=%v", javaFirst), func(t *testing.T) {
			t.Parallel()
			topic, group := env.Topic(t, 6), env.Group(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			o := newOwnership()
			cfg := kafka.ConsumerConfig{Brokers: env.Brokers, Group: group, Topics: []string{topic}, Rebalance: kafka.Cooperative,
				HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second,
				Logger: slog.New(slog.DiscardHandler)}
			startOrdo := func() (stop func()) {
				c, err := kafka.NewConsumer(cfg)
				if err != nil {
					t.Fatal(err)
				}
				runCtx, cancelRun := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- c.RunCooperative(runCtx, recorder{"ordo", o}) }()
				return func() {
					cancelRun()
					if err := <-done; err != nil {
						t.Errorf("ordo member: %v", err)
					}
				}
			}
			var java *javaConsumer
			var stopOrdo func()
			if javaFirst {
				java = startJava(t, env.Brokers, group, topic)
				kafkatest.WaitFor(t, time.Minute, "the java consumer to hold all six partitions", func() bool { return len(java.partitions()) == 6 })
				stopOrdo = startOrdo()
			} else {
				stopOrdo = startOrdo()
				kafkatest.WaitFor(t, time.Minute, "ordo to hold all six partitions", func() bool { return o.count("ordo") == 6 })
				java = startJava(t, env.Brokers, group, topic)
			}
			kafkatest.WaitFor(t, time.Minute, "the partitions to split three and three", func() bool {
				js := java.partitions()
				if len(js) != 3 || o.count("ordo") != 3 {
					return false
				}
				o.mu.Lock()
				defer o.mu.Unlock()
				for _, p := range js {
					if o.owner[p] == "ordo" {
						return false
					}
				}
				return true
			})
			if javaFirst {
				stopOrdo() // ordo leaves: its partitions go back to java
				kafkatest.WaitFor(t, time.Minute, "java to hold all six again", func() bool { return len(java.partitions()) == 6 })
			} else {
				java.stop() // java leaves: its partitions go back to ordo
				kafkatest.WaitFor(t, time.Minute, "ordo to hold all six again", func() bool { return o.count("ordo") == 6 })
				stopOrdo()
			}
			if len(o.doubles) > 0 {
				t.Errorf("partitions ordo took while it held them: %v", o.doubles)
			}
		})
	}
}
