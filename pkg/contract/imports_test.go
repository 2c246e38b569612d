package contract

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The contract is what the components say to each other, not how a client
// library carries it: the package, and every package of the module it
// imports, may import only the standard library and the module itself.
func TestContractImportsNoClientLibrary(t *testing.T) {
	root, module := moduleRoot(t)
	foreign, err := foreignImports(root, module, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(foreign) > 0 {
		t.Fatalf("pkg/contract imports packages outside the standard library and %s: %s", module, strings.Join(foreign, ", "))
	}
}

// The check itself finds a client library imported directly or through a
// package of the module, and passes the standard library and the module.
func TestForeignImports(t *testing.T) {
	root, module := moduleRoot(t)
	for _, tc := range []struct {
		dir  string
		want []string
	}{
		{"testdata/imports/stdlib", nil},
		{"testdata/imports/client", []string{"github.com/segmentio/kafka-go"}},
		{"testdata/imports/viamodule", []string{"github.com/segmentio/kafka-go"}},
	} {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			got, err := foreignImports(root, module, tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("foreign imports %v lack %s", got, w)
				}
			}
			if tc.want == nil && len(got) > 0 {
				t.Errorf("foreign imports %v, want none", got)
			}
		})
	}
}

// moduleRoot finds go.mod above the working directory and reads the
// module path from it.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			s := bufio.NewScanner(f)
			for s.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			t.Fatalf("%s/go.mod names no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// foreignImports returns the imports, sorted, of the non-test Go files in
// dir and, transitively, of the module's packages they import, that are
// neither in the standard library (no dot in the first path element) nor
// in module.
func foreignImports(root, module, dir string) ([]string, error) {
	seen := map[string]bool{}
	foreign := map[string]bool{}
	var visit func(dir string) error
	visit = func(dir string) error {
		if seen[dir] {
			return nil
		}
		seen[dir] = true
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return fmt.Errorf("no Go files in %s", dir)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				switch {
				case path == module || strings.HasPrefix(path, module+"/"):
					if err := visit(filepath.Join(root, strings.TrimPrefix(path, module))); err != nil {
						return err
					}
				case !strings.Contains(strings.Split(path, "/")[0], "."):
					// the standard library
				default:
					foreign[path] = true
				}
			}
		}
		return nil
	}
	if err := visit(dir); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(foreign))
	for p := range foreign {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}
