package api_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// publicPackages lists the package directories, relative to the module root,
// whose exported API is pinned by a golden file api/<dir with / as _>.txt.
// A directory that does not exist (or holds no non-test Go file) is skipped,
// so the list may name a package before it is created or after it is moved.
var publicPackages = []string{
	"jobs",
	"jobs/jobstest",
	"actors",
	"kafka",
	"kafka/kafkaembed",
	"supervision",
	"dashboard",
}

var update = flag.Bool("update", false, "rewrite the golden files in api/ from the current source")

// updating reports whether this run should rewrite the golden files instead of
// checking them; ORDO_UPDATE_API=1 helps where test flags are awkward to pass.
func updating() bool {
	return *update || os.Getenv("ORDO_UPDATE_API") == "1"
}

const acceptHint = "If the change is intended, run `go test ./api -update` (or ORDO_UPDATE_API=1 go test ./api) and commit the golden file."

// TestAPIMatchesGoldenFiles makes every change to the exported API visible in
// review: the surface of each public package is rendered one identifier per
// line and compared with the committed api/*.txt file.
func TestAPIMatchesGoldenFiles(t *testing.T) {
	wanted := map[string]bool{} // golden files that belong to an existing package
	for _, pkg := range publicPackages {
		dir := filepath.Join("..", filepath.FromSlash(pkg))
		lines, err := exportedAPI(dir)
		if errors.Is(err, errNoPackage) {
			t.Logf("skipping %s: %v", pkg, err)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", pkg, err)
			continue
		}
		golden := goldenFile(pkg)
		wanted[golden] = true
		t.Run(pkg, func(t *testing.T) {
			checkGolden(t, pkg, golden, render(lines))
		})
	}

	// A golden file left behind by a package that was moved or deleted would
	// otherwise go stale silently.
	files, err := filepath.Glob("*.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		switch {
		case wanted[f]:
		case updating():
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
			t.Logf("removed %s: its package is gone or not listed in publicPackages", f)
		default:
			t.Errorf("api/%s belongs to no package in publicPackages (moved or deleted?).\n%s", f, acceptHint)
		}
	}
}

// goldenFile names the golden file of a package directory, e.g. jobs_jobstest.txt.
func goldenFile(pkg string) string {
	return strings.ReplaceAll(pkg, "/", "_") + ".txt"
}

func render(lines []string) []byte {
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// checkGolden compares got with the golden file, or rewrites the file when
// updating. The diff lists whole lines: the files are sorted sets, so added
// and removed identifiers are what a reviewer needs to see.
func checkGolden(t *testing.T, pkg, golden string, got []byte) {
	t.Helper()
	if updating() {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote api/%s (%d lines)", golden, bytes.Count(got, []byte("\n")))
		return
	}
	want, err := os.ReadFile(golden)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("api/%s does not exist yet for package %s.\n%s", golden, pkg, acceptHint)
	}
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, want) {
		return
	}
	added, removed := lineDiff(splitLines(want), splitLines(got))
	var b strings.Builder
	fmt.Fprintf(&b, "the exported API of package %s differs from api/%s:\n", pkg, golden)
	for _, l := range removed {
		fmt.Fprintf(&b, "  - %s\n", l)
	}
	for _, l := range added {
		fmt.Fprintf(&b, "  + %s\n", l)
	}
	if len(added) == 0 && len(removed) == 0 {
		b.WriteString("  (same lines, different order or line endings: was the file edited by hand?)\n")
	}
	b.WriteString(acceptHint)
	t.Error(b.String())
}

func splitLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lineDiff returns the lines only in got (added) and only in want (removed),
// each in the order they appear.
func lineDiff(want, got []string) (added, removed []string) {
	inWant := map[string]bool{}
	for _, l := range want {
		inWant[l] = true
	}
	inGot := map[string]bool{}
	for _, l := range got {
		inGot[l] = true
		if !inWant[l] {
			added = append(added, l)
		}
	}
	for _, l := range want {
		if !inGot[l] {
			removed = append(removed, l)
		}
	}
	return added, removed
}

var errNoPackage = errors.New("no non-test Go files")

// exportedAPI parses the non-test Go files in dir and returns the sorted lines
// describing its exported surface, in the spirit of `go doc -all` but one line
// per identifier and without doc comments, so that a diff names exactly what
// changed. It needs only the syntax, not a compiling package, so it also works
// in the middle of a refactor.
//
// Build constraints are not evaluated: every non-test file is read, and when a
// name is declared twice (say in foo_linux.go and foo_other.go) the first file
// in name order wins.
func exportedAPI(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", errNoPackage, dir)
	}
	if err != nil {
		return nil, err
	}
	w := apiWriter{fset: token.NewFileSet(), seen: map[string]bool{}}
	files := 0
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(w.fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files++
		for _, d := range f.Decls {
			w.decl(d)
		}
	}
	if files == 0 {
		return nil, fmt.Errorf("%w in %s", errNoPackage, dir)
	}
	slices.Sort(w.lines)
	return w.lines, nil
}

// apiWriter collects the lines of one package.
type apiWriter struct {
	fset  *token.FileSet
	seen  map[string]bool // keys such as "method Client.Do", see add
	lines []string
}

// add records line under key (kind and qualified name) unless key was seen
// already, which keeps the first of duplicate declarations.
func (w *apiWriter) add(key, line string) {
	if w.seen[key] {
		return
	}
	w.seen[key] = true
	w.lines = append(w.lines, line)
}

func (w *apiWriter) decl(d ast.Decl) {
	switch d := d.(type) {
	case *ast.FuncDecl:
		w.funcDecl(d)
	case *ast.GenDecl:
		switch d.Tok {
		case token.CONST:
			w.consts(d)
		case token.VAR:
			w.vars(d)
		case token.TYPE:
			for _, s := range d.Specs {
				w.typeSpec(s.(*ast.TypeSpec))
			}
		}
	}
}

// consts prints `const Name Type = value`. A spec that repeats the previous
// expression implicitly (the rest of an iota group) has no value of its own to
// print, so it shows only the type it inherits: `const Name Type`.
func (w *apiWriter) consts(d *ast.GenDecl) {
	var groupType ast.Expr
	for _, s := range d.Specs {
		vs := s.(*ast.ValueSpec)
		implicit := vs.Type == nil && len(vs.Values) == 0
		if !implicit {
			groupType = vs.Type
		}
		for i, name := range vs.Names {
			if !name.IsExported() {
				continue
			}
			line := "const " + name.Name
			if groupType != nil {
				line += " " + w.print(groupType)
			}
			if !implicit && i < len(vs.Values) {
				line += " = " + w.print(vs.Values[i])
			}
			w.add("const "+name.Name, line)
		}
	}
}

// vars prints `var Name Type`, or `var Name = value` when the type is inferred.
func (w *apiWriter) vars(d *ast.GenDecl) {
	for _, s := range d.Specs {
		vs := s.(*ast.ValueSpec)
		for i, name := range vs.Names {
			if !name.IsExported() {
				continue
			}
			line := "var " + name.Name
			switch {
			case vs.Type != nil:
				line += " " + w.print(vs.Type)
			case len(vs.Values) == len(vs.Names):
				line += " = " + w.print(vs.Values[i])
			case len(vs.Values) == 1: // var a, b = f()
				line += " = " + w.print(vs.Values[0])
			}
			w.add("var "+name.Name, line)
		}
	}
}

// typeSpec prints the type line, then the exported fields of a struct or the
// methods of an interface, so that a field or method change shows up as its
// own line.
func (w *apiWriter) typeSpec(ts *ast.TypeSpec) {
	if !ts.Name.IsExported() {
		return
	}
	name := ts.Name.Name
	// Print a copy without comments; for structs and interfaces the body is
	// replaced by the keyword, since fields and methods get lines of their own.
	spec := &ast.TypeSpec{Name: ts.Name, TypeParams: ts.TypeParams, Assign: ts.Assign, Type: ts.Type}
	st, isStruct := ts.Type.(*ast.StructType)
	it, isIface := ts.Type.(*ast.InterfaceType)
	switch {
	case ts.Assign.IsValid(): // alias: printed in full as `type Name = Other`
	case isStruct:
		spec.Type = ast.NewIdent("struct")
	case isIface:
		spec.Type = ast.NewIdent("interface")
	}
	w.add("type "+name, "type "+w.print(spec))
	if ts.Assign.IsValid() {
		return
	}
	switch {
	case isStruct:
		w.fields(name, st)
	case isIface:
		w.ifaceMethods(name, it)
	}
}

// fields prints `field Type.Field FieldType`, or `field Type.Embedded (embedded)`.
func (w *apiWriter) fields(typeName string, st *ast.StructType) {
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 {
			if n := baseTypeName(f.Type); ast.IsExported(n) {
				w.add("field "+typeName+"."+n, "field "+typeName+"."+n+" (embedded)")
			}
			continue
		}
		for _, n := range f.Names {
			if n.IsExported() {
				w.add("field "+typeName+"."+n.Name, "field "+typeName+"."+n.Name+" "+w.print(f.Type))
			}
		}
	}
}

// ifaceMethods prints `method Iface.Name(params) results`. Embedded interfaces
// print as `method Iface.Embedded (embedded)`, like embedded fields, and other
// constraint elements (unions, ~T) as `method Iface (type set ~int | ~string)`.
func (w *apiWriter) ifaceMethods(typeName string, it *ast.InterfaceType) {
	for _, m := range it.Methods.List {
		if ft, ok := m.Type.(*ast.FuncType); ok && len(m.Names) > 0 {
			for _, n := range m.Names {
				if n.IsExported() {
					sig := strings.TrimPrefix(w.print(ft), "func")
					w.add("method "+typeName+"."+n.Name, "method "+typeName+"."+n.Name+sig)
				}
			}
			continue
		}
		if n := baseTypeName(m.Type); n != "" {
			w.add("method "+typeName+"."+n, "method "+typeName+"."+n+" (embedded)")
			continue
		}
		elem := w.print(m.Type)
		w.add("method "+typeName+" "+elem, "method "+typeName+" (type set "+elem+")")
	}
}

// funcDecl prints `func Name[T C](params) results` for functions and
// `method (*Type) Name(params) results` for exported methods of exported
// types. The receiver's name is left out: callers never see it, and renaming
// it should not look like an API change.
func (w *apiWriter) funcDecl(fd *ast.FuncDecl) {
	if !fd.Name.IsExported() {
		return
	}
	decl := &ast.FuncDecl{Name: fd.Name, Type: fd.Type} // no doc, no body
	if fd.Recv == nil {
		w.add("func "+fd.Name.Name, w.print(decl))
		return
	}
	if len(fd.Recv.List) != 1 {
		return // invalid Go; the compiler will say so
	}
	recvType := fd.Recv.List[0].Type
	base := baseTypeName(recvType)
	if !ast.IsExported(base) {
		return
	}
	decl.Recv = &ast.FieldList{List: []*ast.Field{{Type: recvType}}}
	line := "method " + strings.TrimPrefix(w.print(decl), "func ")
	w.add("method "+base+"."+fd.Name.Name, line)
}

// baseTypeName returns the type name in a receiver or embedded field: Client
// for *Client, Job for Job[T], Header for kafka.Header; "" for anything else.
func baseTypeName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.Ident:
			return x.Name
		case *ast.SelectorExpr:
			return x.Sel.Name
		case *ast.StarExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		default:
			return ""
		}
	}
}

// print renders a node with gofmt's printer and folds it onto one line.
// Bodies of function literals are dropped first: they are implementation,
// not API, and would make every edit inside them look like an API change.
func (w *apiWriter) print(n ast.Node) string {
	ast.Inspect(n, func(n ast.Node) bool {
		if fl, ok := n.(*ast.FuncLit); ok {
			fl.Body = &ast.BlockStmt{}
		}
		return true
	})
	var b strings.Builder
	if err := printer.Fprint(&b, w.fset, n); err != nil {
		return fmt.Sprintf("<unprintable: %v>", err)
	}
	return oneLine(b.String())
}

var blanks = regexp.MustCompile(`[ \t]+`)

// oneLine joins the lines gofmt printed, the way one would write them by
// hand: no space after an opening bracket or before a closing one, the
// trailing comma of a multi-line list dropped, and "; " where a newline
// separated fields or statements. Runs of blanks (gofmt's column alignment)
// become one space.
func oneLine(s string) string {
	var out string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(blanks.ReplaceAllString(l, " "))
		if l == "" {
			continue
		}
		if out == "" {
			out = l
			continue
		}
		last := out[len(out)-1]
		switch {
		case last == '(' || last == '[':
		case l[0] == ')' || l[0] == ']':
			out = strings.TrimSuffix(out, ",")
		case l[0] == '}':
			out = strings.TrimSuffix(out, ",")
			if last != '{' {
				out += " "
			}
		case last == ',' || last == '{':
			out += " "
		default:
			out += "; "
		}
		out += l
	}
	return out
}

// TestExportedAPILineFormats pins the line format of each kind of
// declaration, so that a change to the generator is not mistaken for a change
// to ordo's API when the golden files are regenerated.
func TestExportedAPILineFormats(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"typed const", `const A T = 1`, []string{"const A T = 1"}},
		{"untyped const", `const A = "a"`, []string{`const A = "a"`}},
		{"iota group", "type K int\nconst (\n\tA K = iota\n\tB\n\tc\n)", []string{"const A K = iota", "const B K", "type K int"}},
		{"typed var", `var V error = errors.New("x")`, []string{"var V error"}},
		{"inferred var", `var V = errors.New("x")`, []string{`var V = errors.New("x")`}},
		{"multi-line var", "var V = T{\n\tA: 1,\n\tB: 2,\n}", []string{"var V = T{ A: 1, B: 2 }"}},
		{"func literal body dropped", "var V = func() int {\n\treturn 1\n}", []string{"var V = func() int {}"}},
		{"generic func", `func F[T any, U comparable](t T, u ...U) (T, error) { return t, nil }`, []string{"func F[T any, U comparable](t T, u ...U) (T, error)"}},
		{"multi-line params", "func F(\n\ta int,\n\tb string,\n) error { return nil }", []string{"func F(a int, b string) error"}},
		{"unexported", "func f() {}\ntype t struct{ A int }\nfunc (t) M() {}\nvar v int", nil},
		{"struct", "type S struct {\n\tA, b int\n\tC struct{ D int }\n\tio.Reader\n\t*Inner\n\tinner\n}", []string{
			"field S.A int", "field S.C struct{ D int }", "field S.Inner (embedded)", "field S.Reader (embedded)", "type S struct"}},
		{"generic struct and method", "type J[T any] struct{ Args T }\nfunc (j *J[T]) Do() {}\nfunc (J[T]) Val() T { var t T; return t }", []string{
			"field J.Args T", "method (*J[T]) Do()", "method (J[T]) Val() T", "type J[T any] struct"}},
		{"interface", "type I interface {\n\tJ\n\tM(x int) error\n\tm()\n}", []string{"method I.J (embedded)", "method I.M(x int) error", "type I interface"}},
		{"constraint", "type N interface{ ~int | ~int64 }", []string{"method N (type set ~int | ~int64)", "type N interface"}},
		{"alias and named", "type A = kafkago.Header\ntype H func(ctx context.Context) error", []string{"type A = kafkago.Header", "type H func(ctx context.Context) error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.go"), []byte("package p\n\n"+tc.src+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := exportedAPI(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

// TestDuplicateDeclarationKeepsFirst covers packages with per-platform files,
// which the generator reads all of regardless of build constraints.
func TestDuplicateDeclarationKeepsFirst(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"f_linux.go": "func F(a int) {}",
		"f_other.go": "func F(b string) {}",
		"f_test.go":  "func Test() {}",
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("package p\n\n"+src+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := exportedAPI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"func F(a int)"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
