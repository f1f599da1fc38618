package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ordo-go/ordo/dashboard"
	"github.com/ordo-go/ordo/internal/status"
)

func webCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c := newFlags("web", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve the dashboard on; loopback unless you mean otherwise")
	auth := fs.String("auth", "", "require credentials: bearer:TOKEN or basic:USER:PASS (default: env ORDO_WEB_AUTH, which keeps them out of ps)")
	readOnly := fs.Bool("read-only", false, "hide and refuse replays")
	showPayloads := fs.Bool("show-payloads", false, "show dead letters' args (by default only their size and kind)")
	statusTopic := fs.String("status-topic", status.DefaultTopic, "the servers' status topic (jobs.Config.StatusTopic)")
	var dlqs stringList
	fs.Var(&dlqs, "dlq-topic", "a dead-letter topic to browse besides those the servers report (repeatable)")
	allowedHosts := fs.String("allowed-hosts", "", "host names the dashboard answers to, comma-separated (host or host:port); "+
		"IP addresses, localhost and the host of --listen always work, any other name is refused (DNS rebinding)")
	if err := parse(fs, args); err != nil {
		return err
	}
	*auth = cmp.Or(*auth, os.Getenv("ORDO_WEB_AUTH")) // after parsing: usage never prints it
	k, err := c.open()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := dashboard.Config{Brokers: k.brokers, Security: k.security, StatusTopic: *statusTopic, DeadLetterTopics: dlqs,
		AllowedHosts: hostList(*allowedHosts, *listen), ReadOnly: *readOnly, ShowPayloads: *showPayloads, Logger: log}
	if err := parseAuth(*auth, &cfg); err != nil {
		return err
	}
	d, err := dashboard.New(cfg)
	if err != nil {
		return err
	}
	defer d.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if !loopback(ln.Addr()) && *auth == "" {
		log.Warn("ordo web: listening beyond loopback without --auth: anyone who reaches this address can replay dead letters",
			"listen", ln.Addr().String())
	}
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "ordo web: serving the dashboard on http://%s/\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	}
}

// hostList is --allowed-hosts split, with the host --listen names when it
// is a name.
func hostList(flag, listen string) []string {
	var out []string
	for _, h := range strings.Split(flag, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" && net.ParseIP(host) == nil {
		out = append(out, host)
	}
	return out
}

// parseAuth reads --auth into cfg.
func parseAuth(s string, cfg *dashboard.Config) error {
	if s == "" {
		return nil
	}
	scheme, rest, _ := strings.Cut(s, ":")
	switch scheme {
	case "bearer":
		if rest == "" {
			return fmt.Errorf("%w: --auth bearer:TOKEN needs a token", errUsage)
		}
		cfg.BearerToken = rest
		return nil
	case "basic":
		user, pass, ok := strings.Cut(rest, ":")
		if !ok || user == "" || pass == "" {
			return fmt.Errorf("%w: --auth basic:USER:PASS needs a user and a password", errUsage)
		}
		cfg.BasicUser, cfg.BasicPassword = user, pass
		return nil
	}
	return fmt.Errorf("%w: --auth must be bearer:TOKEN or basic:USER:PASS", errUsage)
}

func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	*s = append(*s, v)
	return nil
}
