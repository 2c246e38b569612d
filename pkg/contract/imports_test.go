package contract

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
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

// kafkaClient is the Kafka client library; pkg/bus alone speaks it
// (docs/design/packages.md).
const kafkaClient = "github.com/segmentio/kafka-go"

// Outside pkg/bus, no package of the module imports the Kafka client
// library in its non-test files: what the others do with Kafka goes
// through pkg/bus, in contract.Message terms. (pkg/devkafka is the
// embedded broker, built on franz-go's kfake, not a client of kafka-go.)
func TestOnlyBusImportsKafkaClient(t *testing.T) {
	root, module := moduleRoot(t)
	got, err := importersOf(root, kafkaClient)
	if err != nil {
		t.Fatal(err)
	}
	var others []string
	for _, dir := range got {
		if dir != "pkg/bus" {
			others = append(others, dir)
		}
	}
	if len(others) > 0 {
		t.Fatalf("%s is imported outside %s/pkg/bus, by the non-test files of: %s", kafkaClient, module, strings.Join(others, ", "))
	}
	if !slices.Contains(got, "pkg/bus") {
		t.Fatalf("pkg/bus does not import %s: the check finds nothing (importers: %v)", kafkaClient, got)
	}
}

// The walk finds a direct importer and passes packages that import the
// library only through the module.
func TestImportersOf(t *testing.T) {
	got, err := importersOf(filepath.Join("testdata", "imports"), kafkaClient)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"client"}) {
		t.Fatalf("importers of %s in testdata/imports: %v, want [client]", kafkaClient, got)
	}
}

// importersOf returns, sorted and relative to root, the directories of
// the module whose non-test Go files import path directly; testdata,
// hidden and vendor directories and bin are not the module's packages.
func importersOf(root, path string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			base := d.Name()
			if name != root && (base == "testdata" || base == "vendor" || strings.HasPrefix(base, ".") || strings.HasPrefix(base, "_") || name == filepath.Join(root, "bin")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) != path {
				continue
			}
			dir, err := filepath.Rel(root, filepath.Dir(name))
			if err != nil {
				return err
			}
			if dir = filepath.ToSlash(dir); !slices.Contains(out, dir) {
				out = append(out, dir)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
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
