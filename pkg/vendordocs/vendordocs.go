// Package vendordocs embeds the JSON examples of the vendors' documents
// (shared/seeds), copied verbatim. They are the fixtures of the client tests
// and the templates of the simulator's answers, quirks included.
//
// Two copies are not byte-for-byte the documents': the documents' web pages
// indent some examples with U+00A0 (no-break space), which Example turns into
// plain spaces; and document 001's result/stat example lacks two commas, so
// baidu_result_stat.json adds them while baidu_result_stat_verbatim.txt keeps
// the original (a body no JSON decoder accepts, used as a malformed answer).
package vendordocs

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"sort"
)

//go:embed examples
var files embed.FS

// Example returns the named example (file name under examples/), with
// no-break spaces turned into spaces.
func Example(name string) ([]byte, error) {
	b, err := files.ReadFile("examples/" + name)
	if err != nil {
		return nil, fmt.Errorf("vendordocs: %w", err)
	}
	return bytes.ReplaceAll(b, []byte("\u00a0"), []byte(" ")), nil
}

// MustExample is Example for names known at compile time; it panics only on
// a programming error (a name that is not embedded).
func MustExample(name string) []byte {
	b, err := Example(name)
	if err != nil {
		panic(err)
	}
	return b
}

// Names lists the embedded examples.
func Names() []string {
	var out []string
	_ = fs.WalkDir(files, "examples", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, d.Name())
		}
		return nil
	})
	sort.Strings(out)
	return out
}
