package api_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// jobs is the one package a job user imports, so `go doc jobs.X` must answer
// on its own: a default shows its number, a type its fields, and the package
// doc says how to read what lands in a dead-letter topic.
func TestGoDocOfJobsAnswersWithoutAnotherPackage(t *testing.T) {
	pkg := parseDoc(t, filepath.Join("..", "jobs"))
	for _, group := range pkg.Consts {
		for _, spec := range group.Decl.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Default") || i >= len(vs.Values) {
					continue
				}
				if sel := selectorIn(vs.Values[i]); sel != "" {
					t.Errorf("go doc shows jobs.%s = %s, with no value a reader can see: spell it out", name.Name, sel)
				}
			}
		}
	}

	// An alias of another package's struct shows no fields: its doc comment
	// must name each exported field, or the type must be jobs' own.
	for _, typ := range pkg.Types {
		ts := typ.Decl.Specs[0].(*ast.TypeSpec)
		if !ts.Assign.IsValid() {
			continue
		}
		sel, ok := ts.Type.(*ast.SelectorExpr)
		if !ok {
			continue
		}
		fields := structFields(t, sel.X.(*ast.Ident).Name, sel.Sel.Name)
		for _, f := range fields {
			if !regexp.MustCompile(`\b` + f + `\b`).MatchString(typ.Doc) {
				t.Errorf("go doc jobs.%s shows an alias of %s.%s and no field %s: name it in the doc comment, or make the type jobs' own", typ.Name, sel.X, sel.Sel, f)
			}
		}
	}

	if !strings.Contains(pkg.Doc, "\n# Reading dead letters\n") {
		t.Errorf("jobs' package doc has no \"# Reading dead letters\" section")
	}
}

func parseDoc(t *testing.T, dir string) *doc.Package {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/ordo-go/ordo/"+filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	return pkg
}

// selectorIn returns the first pkg.Name the expression refers to, or "".
func selectorIn(e ast.Expr) string {
	var found string
	ast.Inspect(e, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && found == "" {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name != "time" {
				found = x.Name + "." + sel.Sel.Name
			}
		}
		return found == ""
	})
	return found
}

// structFields lists the exported fields of struct type name in the ordo
// package pkgName (a sibling directory of api, or of internal's packages),
// or none when it is no struct.
func structFields(t *testing.T, pkgName, name string) []string {
	t.Helper()
	dir := filepath.Join("..", pkgName)
	if _, err := os.Stat(dir); err != nil {
		dir = filepath.Join("..", "internal", pkgName)
	}
	pkg := parseDoc(t, dir)
	for _, typ := range pkg.Types {
		if typ.Name != name {
			continue
		}
		st, ok := typ.Decl.Specs[0].(*ast.TypeSpec).Type.(*ast.StructType)
		if !ok {
			return nil
		}
		var out []string
		for _, f := range st.Fields.List {
			for _, n := range f.Names {
				if n.IsExported() {
					out = append(out, n.Name)
				}
			}
		}
		return out
	}
	return nil
}
