package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
	"github.com/ordo-go/ordo/jobs"
)

// recordingLogger logs at WARN into the returned log, and into the test's
// output once the test ends.
func recordingLogger(t testing.TB) (*slog.Logger, *kafkatest.Log) {
	l := &kafkatest.Log{}
	t.Cleanup(func() {
		for _, line := range l.Matching() {
			t.Log(line)
		}
	})
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn})), l
}

// silentBroker listens on loopback, accepts every connection and never
// answers on it, as a host that is not Kafka (or a hung broker) may. Each
// accepted connection is sent on the channel returned.
func silentBroker(t *testing.T) (string, <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1000)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

// unreachableConfig is a server's configuration with a broker that cannot
// be used; nothing else in it matters to Start's first step.
func unreachableConfig(t *testing.T, broker string, logger *slog.Logger) jobs.Config {
	ws, _ := keyedWorkers(t)
	return jobs.Config{
		Brokers: []string{broker}, Group: "g", Topics: []string{"mail"}, Workers: ws,
		CreateTopics: &jobs.TopicSpec{Partitions: 1, ReplicationFactor: 1},
		Backoff:      jobs.Backoff{Initial: 200 * time.Millisecond, Max: 400 * time.Millisecond},
		Logger:       logger,
	}
}

// startAsync runs s.Start(ctx) and sends its error when it returns.
func startAsync(s *jobs.Server, ctx context.Context) <-chan error {
	out := make(chan error, 1)
	go func() { out <- s.Start(ctx) }()
	return out
}

// The quickstart with a wrong broker address: Start, given a context with
// no deadline, warns within 2 s naming the broker and why it failed, and
// gives up after Config.StartTimeout with an error naming the broker that
// errors.Is matches with context.DeadlineExceeded.
func TestStartWithAWrongBrokerWarnsAndFailsWithinStartTimeout(t *testing.T) {
	t.Parallel()
	const startTimeout = 3 * time.Second
	broker := closedAddr(t)
	logger, logs := recordingLogger(t)
	cfg := unreachableConfig(t, broker, logger)
	cfg.StartTimeout = startTimeout
	s, err := jobs.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })

	began := time.Now()
	result := startAsync(s, context.Background())
	kafkatest.WaitFor(t, 2*time.Second, "a warning naming the broker and the refused connection", func() bool {
		return len(logs.Matching("level=WARN", broker, "connection refused")) > 0
	})
	t.Logf("first warning %v after Start", time.Since(began).Round(time.Millisecond))
	select {
	case err = <-result:
	case <-time.After(startTimeout + 2*time.Second):
		t.Fatalf("Start had not returned %v after it began (StartTimeout %v)", time.Since(began).Round(time.Millisecond), startTimeout)
	}
	took := time.Since(began)
	if err == nil || !strings.Contains(err.Error(), broker) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start returned %v; want an error naming %s that wraps context.DeadlineExceeded", err, broker)
	}
	if took < startTimeout-100*time.Millisecond || took > startTimeout+time.Second {
		t.Errorf("Start returned after %v; want about StartTimeout (%v)", took.Round(time.Millisecond), startTimeout)
	}
	t.Logf("Start returned after %v: %v", took.Round(time.Millisecond), err)
}

// A host that accepts connections and never answers is treated as a broker
// that refuses them: Start warns, naming it, tries again with back-off,
// and fails when its context ends with an error naming it.
func TestStartRetriesABrokerThatNeverAnswers(t *testing.T) {
	t.Parallel()
	broker, _ := silentBroker(t)
	logger, logs := recordingLogger(t)
	s, err := jobs.NewServer(unreachableConfig(t, broker, logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	began := time.Now()
	result := startAsync(s, ctx)
	kafkatest.WaitFor(t, 2*time.Second, "a warning naming the silent broker", func() bool {
		return len(logs.Matching("level=WARN", broker)) > 0
	})
	t.Logf("first warning %v after Start", time.Since(began).Round(time.Millisecond))
	kafkatest.WaitFor(t, 5*time.Second, "a second warning: Start tried again", func() bool {
		return len(logs.Matching("level=WARN", broker)) > 1
	})
	select {
	case err = <-result:
	case <-time.After(8 * time.Second):
		t.Fatal("Start had not returned 2 s after its context's deadline")
	}
	if err == nil || !strings.Contains(err.Error(), broker) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start returned %v; want an error naming %s that wraps context.DeadlineExceeded", err, broker)
	}
	if took := time.Since(began); took < 5*time.Second {
		t.Errorf("Start gave up after %v, before its context's deadline (6s)", took.Round(time.Millisecond))
	}
	t.Logf("Start returned after %v: %v", time.Since(began).Round(time.Millisecond), err)
}

// A Stop while Start waits for a broker it cannot use makes Start return
// within a second with ErrServerStopped, whether the broker refuses the
// connection or never answers, and even when Start's context has no
// deadline.
func TestStopDuringStartEndsStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		broker func(t *testing.T) (addr string, blocked func(*kafkatest.Log) bool)
	}{
		{"refused", func(t *testing.T) (string, func(*kafkatest.Log) bool) {
			addr := closedAddr(t)
			return addr, func(l *kafkatest.Log) bool { return len(l.Matching("level=WARN", addr)) > 0 }
		}},
		{"silent", func(t *testing.T) (string, func(*kafkatest.Log) bool) {
			addr, accepted := silentBroker(t)
			return addr, func(*kafkatest.Log) bool {
				select {
				case <-accepted:
					return true
				default:
					return false
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, blocked := tc.broker(t)
			logger, logs := recordingLogger(t)
			s, err := jobs.NewServer(unreachableConfig(t, addr, logger))
			if err != nil {
				t.Fatal(err)
			}
			result := startAsync(s, context.Background())
			kafkatest.WaitFor(t, 5*time.Second, "Start to be waiting on the broker", func() bool { return blocked(logs) })
			if err := s.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			select {
			case err = <-result:
			case <-time.After(time.Second):
				t.Fatal("Start had not returned a second after Stop")
			}
			if !errors.Is(err, jobs.ErrServerStopped) {
				t.Fatalf("Start returned %v after Stop; want ErrServerStopped", err)
			}
			t.Logf("Start returned %v after Stop: %v", time.Since(stopped).Round(time.Millisecond), err)
		})
	}
}
