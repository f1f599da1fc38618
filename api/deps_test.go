package api_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// productionPackages are the packages an application links into its binary;
// their dependency graph must stay free of what only tests and tools need.
var productionPackages = []string{"./jobs", "./actors", "./kafka", "./supervision", "./dashboard", "./cmd/ordo"}

// testOnlyImports are substrings of import paths that must not appear in the
// graph of productionPackages, with the reason, which the failure repeats.
var testOnlyImports = []struct{ substr, why string }{
	{"/kfake", "kfake is an in-memory Kafka for tests"},
	{"franz-go", "franz-go is only the engine of the in-memory test broker"},
	{"gonum", "gonum draws the benchmark plots"},
	{"chromedp", "chromedp drives the browser of the dashboard's tests"},
	{"github.com/ordo-go/ordo/kafka/kafkaembed", "kafkaembed starts a broker for tests and examples"},
}

// testOnlyPattern returns the entry of testOnlyImports that importPath
// matches, if any.
func testOnlyPattern(importPath string) (substr, why string, ok bool) {
	for _, f := range testOnlyImports {
		if strings.Contains(importPath, f.substr) {
			return f.substr, f.why, true
		}
	}
	return "", "", false
}

func isTestOnly(importPath string) bool {
	_, _, ok := testOnlyPattern(importPath)
	return ok
}

// offense is a test-only package found in the production graph.
type offense struct {
	pulledInBy []string // which of productionPackages reach it
	importedBy []string // its importers that are not test-only themselves
}

// TestProductionGraphHasNoTestOnlyDependencies keeps the test broker and the
// benchmark tooling out of users' binaries: it lists the transitive imports of
// each production package and names every test-only package found, which
// production packages pull it in, and which non-test-only package imports it,
// since that import is the one to remove.
func TestProductionGraphHasNoTestOnlyDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs `go list`; skipped in -short mode")
	}
	goCmd := goCommand(t)
	offenses := map[string]*offense{}
	for _, pkg := range productionPackages {
		graph := listDeps(t, goCmd, pkg)
		if pkg == "./jobs" {
			t.Logf("go list -deps ./jobs: %d packages", len(graph))
		}
		for path := range graph {
			if !isTestOnly(path) {
				continue
			}
			o := offenses[path]
			if o == nil {
				o = &offense{}
				offenses[path] = o
			}
			o.pulledInBy = append(o.pulledInBy, pkg)
			for importer, imports := range graph {
				if !isTestOnly(importer) && slices.Contains(imports, path) && !slices.Contains(o.importedBy, importer) {
					o.importedBy = append(o.importedBy, importer)
				}
			}
		}
	}
	if len(offenses) == 0 {
		return
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%d test-only packages are linked into the production packages:\n", len(offenses))
	matched := map[string]string{} // pattern -> why, for the legend
	for _, path := range slices.Sorted(maps.Keys(offenses)) {
		o := offenses[path]
		substr, why, _ := testOnlyPattern(path)
		matched[substr] = why
		fmt.Fprintf(&b, "  %s\n      pulled in by %s", path, strings.Join(o.pulledInBy, ", "))
		if len(o.importedBy) > 0 {
			slices.Sort(o.importedBy)
			fmt.Fprintf(&b, "; imported by %s", strings.Join(o.importedBy, ", "))
		}
		b.WriteString("\n")
	}
	b.WriteString("why they are test-only:\n")
	for _, substr := range slices.Sorted(maps.Keys(matched)) {
		fmt.Fprintf(&b, "  %q: %s\n", substr, matched[substr])
	}
	b.WriteString("Move the code behind the \"imported by\" imports to a test-only package (such as kafka/kafkaembed) or to _test.go files.")
	t.Error(b.String())
}

// goCommand finds the go command of the toolchain running the test, so the
// graph is computed by the same Go version; PATH is the fallback.
func goCommand(t *testing.T) string {
	t.Helper()
	bin := "go"
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", bin); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	return p
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// listDeps runs `go list -deps` on pkg from the module root and returns the
// graph as each package's direct imports, keyed by import path; the keys are
// exactly the packages `go list -deps pkg` prints, pkg included.
func listDeps(t *testing.T, goCmd, pkg string) map[string][]string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), goCmd, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pkg)
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	graph := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			graph[fields[0]] = fields[1:]
		}
	}
	return graph
}
