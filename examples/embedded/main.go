// Command embedded runs ordo inside a service that already has a protoactor
// ActorSystem and an HTTP server: ordo's partition and key actors live in the
// service's system (Config.ActorSystem), jobs talk to the service's own
// actors, the HTTP server serves /signup (which enqueues a job), /healthz and
// /stats (Server.Stats as JSON: per partition, jobs running and buffered, and
// the committed offset), and SIGTERM (or Ctrl-C) shuts everything down
// gracefully: stop taking requests, finish running jobs and commit, then stop
// the actors.
//
//	go run ./examples/embedded -addr 127.0.0.1:8080
//	curl -X POST '127.0.0.1:8080/signup?email=ada@example.com'
//	curl 127.0.0.1:8080/stats
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/ordo-go/ordo/jobs"
	"github.com/ordo-go/ordo/kafka/kafkaembed"
)

// SignupArgs is a job: welcome a new user.
type SignupArgs struct {
	Email string `msgpack:"email"`
}

func (SignupArgs) Kind() string { return "signup" }

func (a SignupArgs) Partitioning() jobs.Partitioning { return jobs.Partitioning{Value: a.Email} }

// The service's own actor: it counts welcomed users. Jobs send it messages.
type (
	welcomed     struct{ email string }
	countRequest struct{}
)

type welcomeCounter struct{ n int }

func (c *welcomeCounter) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *welcomed:
		c.n++
	case *countRequest:
		ctx.Respond(c.n)
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, *addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down. ready, when set, gets the
// service's base URL once it serves.
func run(ctx context.Context, out io.Writer, addr string, ready func(url string)) (err error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	brokers, stopBroker, err := kafkaembed.FromEnv()
	if err != nil {
		return err
	}
	defer stopBroker()
	// A fresh topic per run: runs on a shared broker never see each other's jobs.
	topic := "signups-" + rand.Text()[:8]

	// The service's actor system, created before ordo and shut down after it.
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	defer system.Shutdown()
	counter := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &welcomeCounter{} }))

	client, err := jobs.NewClient(jobs.ClientConfig{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, client.Close()) }()
	workers := jobs.NewWorkers()
	err = jobs.AddWorker(workers, jobs.WorkFunc(func(ctx context.Context, job *jobs.Job[SignupArgs]) error {
		// Send the welcome email here, then tell the service's actor.
		system.Root.Send(counter, &welcomed{email: job.Args.Email})
		return nil
	}))
	if err != nil {
		return err
	}
	server, err := jobs.NewServer(jobs.Config{
		Brokers: brokers, Group: "welcomer-" + topic, Topics: []string{topic}, Workers: workers,
		CreateTopics:    &jobs.TopicSpec{Partitions: 4, ReplicationFactor: 1},
		ActorSystem:     system,
		Logger:          logger,
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	if err := server.Start(ctx); err != nil {
		return errors.Join(err, server.Stop(context.Background()))
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(server.Stats()); err != nil {
			logger.Warn("embedded: /stats", "err", err)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		n, err := system.Root.RequestFuture(counter, &countRequest{}, time.Second).Result()
		if err != nil {
			http.Error(w, "actor system: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok: %d partitions held, %d users welcomed\n", len(server.Stats()), n)
	})
	mux.HandleFunc("POST /signup", func(w http.ResponseWriter, r *http.Request) {
		email := r.URL.Query().Get("email")
		if email == "" {
			http.Error(w, "email is required", http.StatusBadRequest)
			return
		}
		info, err := client.Enqueue(r.Context(), SignupArgs{Email: email})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "enqueued job %s\n", info.ID)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, server.Stop(context.Background()))
	}
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- web.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(out, "embedded: serving %s (/signup, /healthz, /stats); SIGTERM or Ctrl-C to stop\n", url)
	if ready != nil {
		ready(url)
	}

	select {
	case <-ctx.Done():
	case err = <-served: // the HTTP server failed: shut the rest down
	}
	// Graceful shutdown, outside in: no new requests, then no new jobs
	// (running ones finish and are committed), then the actors.
	fmt.Fprintln(out, "embedded: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = errors.Join(err, web.Shutdown(shutdownCtx), server.Stop(shutdownCtx))
	n, countErr := system.Root.RequestFuture(counter, &countRequest{}, time.Second).Result()
	if countErr != nil {
		return errors.Join(err, countErr)
	}
	fmt.Fprintf(out, "embedded: stopped after welcoming %v users\n", n)
	return err
}
