// Package scripts holds the shell scripts that start Kafka for tests and CI;
// its tests check what those scripts leave behind.
package scripts

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ordo-go/ordo/internal/kafkatest"
)

// A lock held around `make kafka-up` (flock, as a CI runner or a developer's
// wrapper takes one) must be free again once the script returns, though the
// broker it started still runs: the broker must not inherit the descriptor.
func TestADetachedProcessHoldsNoLockItsStarterHeld(t *testing.T) {
	for _, tool := range []string{"bash", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not on PATH", tool)
		}
	}
	dir := t.TempDir()
	lock := filepath.Join(dir, "lock")
	script := `source ./detach.sh; detach "$1" sleep 120; echo $!`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "flock", lock, "bash", "-c", script, "detach", filepath.Join(dir, "log")).Output()
	if err != nil {
		t.Fatalf("flock bash: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("no pid printed: %q", out)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	if err := exec.CommandContext(ctx, "flock", "--nonblock", lock, "true").Run(); err != nil {
		t.Fatalf("the lock is still held after the script returned (pid %d detached): %v", pid, err)
	}
	// An inherited descriptor stays open for the whole sleep. One the new
	// process opens itself while it starts (the dynamic loader reading
	// libc) is closed a moment later: wait for those to go.
	var held []string
	defer func() {
		if t.Failed() {
			t.Logf("the detached process (pid %d) still holds descriptors beyond stdio: %v", pid, held)
		}
	}()
	kafkatest.WaitFor(t, 5*time.Second, "the detached process to hold no descriptor beyond stdio", func() bool {
		held = held[:0]
		fds, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
		for _, fd := range fds {
			target, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd.Name()))
			if n, _ := strconv.Atoi(fd.Name()); n > 2 {
				held = append(held, fd.Name()+" -> "+target)
			}
		}
		return len(held) == 0
	})
}

// Both broker scripts start Kafka through detach, never with a bare nohup
// that would pass their descriptors on.
func TestBrokerScriptsStartKafkaDetached(t *testing.T) {
	launch := regexp.MustCompile(`(?m)^\s*(nohup|detach)\b.*"\$java"`)
	for _, name := range []string{"kafka.sh", "kafka-cluster.sh"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		found := launch.FindAll(src, -1)
		if len(found) == 0 {
			t.Fatalf("%s: no line starts the broker", name)
		}
		for _, l := range found {
			if !bytes.Contains(l, []byte("detach")) {
				t.Errorf("%s starts the broker without detach: %s", name, bytes.TrimSpace(l))
			}
		}
	}
}
