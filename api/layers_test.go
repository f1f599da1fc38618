package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// engineInternals are the internal packages the machinery of a jobs.Server
// lives in, one concept each. They sit below jobs: none may import it.
var engineInternals = []string{
	"./internal/deadletter", // writing dead letters, each holding its key until acknowledged
	"./internal/run",        // running a group's records on the actor runtime
	"./internal/status",     // status reports: the tally, the reporter, the wire format
	"./internal/metrics",    // the Prometheus series and their collector
	"./internal/enqueue",    // building and writing a Client's job records
	"./internal/topics",     // checking and creating a server's topics at Start
	"./internal/validate",   // the checks the configs' validation is built from
	"./internal/lifecycle",  // a server's start-once state, Start against Stop
	"./internal/server",     // a job server assembled from the layers above, under jobs.Server
}

// TestEngineInternalsSitBelowJobs keeps the import arrows one way: the
// machinery gets what it reads of a server through small interfaces
// (deadletter.Counter, run.ClaimRunner, status.Source, metrics.Source),
// never by importing jobs.
func TestEngineInternalsSitBelowJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs `go list`; skipped in -short mode")
	}
	goCmd := goCommand(t)
	for _, pkg := range engineInternals {
		if _, err := os.Stat(filepath.Join("..", pkg)); err != nil {
			t.Errorf("%s: %v: the machinery it names still lives in jobs", pkg, err)
			continue
		}
		for path := range listDeps(t, goCmd, pkg) {
			if path == "github.com/ordo-go/ordo/jobs" {
				t.Errorf("%s imports jobs, directly or not: it must get what it needs passed in", pkg)
			}
		}
	}
}

// TestNothingButTheServerHoldsAServer: the Server owns its parts; a part
// that holds the Server back (as the status reporter and the metrics
// collector did) reads whatever it likes of it, which no interface states.
func TestNothingButTheServerHoldsAServer(t *testing.T) {
	fset := token.NewFileSet()
	dir := filepath.Join("..", "jobs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok || ts.Name.Name == "Server" {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, field := range st.Fields.List {
				if holdsServer(field.Type) {
					t.Errorf("%s: jobs.%s holds a *Server; give it what it reads through a small interface or funcs",
						fset.Position(field.Pos()), ts.Name.Name)
				}
			}
			return true
		})
	}
}

// holdsServer tells whether a field of type expr refers to *Server,
// possibly in a slice, array or map.
func holdsServer(expr ast.Expr) (found bool) {
	ast.Inspect(expr, func(n ast.Node) bool {
		if s, ok := n.(*ast.StarExpr); ok {
			if id, ok := s.X.(*ast.Ident); ok && id.Name == "Server" {
				found = true
			}
		}
		return !found
	})
	return found
}
