// Command report gathers the figures every benchmark of make bench wrote
// (bin/bench-*.json) into one table, printed and written as JSON.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	dir := flag.String("dir", "bin", "directory holding the benchmarks' bench-*.json files")
	out := flag.String("out", "bin/bench-report.json", "where to write the combined figures")
	flag.Parse()
	files, _ := filepath.Glob(filepath.Join(*dir, "bench-*.json"))
	report := map[string]map[string]any{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "bench-"), ".json")
		if name == "report" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			fmt.Fprintf(os.Stderr, "report: %s: %v\n", f, err)
			os.Exit(1)
		}
		flat := map[string]any{}
		flatten("", v, flat)
		report[name] = flat
	}
	if len(report) == 0 {
		fmt.Fprintln(os.Stderr, "report: no bench-*.json in", *dir, "(run make bench)")
		os.Exit(1)
	}
	names := make([]string, 0, len(report))
	for n := range report {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("\n%-10s %-62s %s\n", "benchmark", "figure", "value")
	for _, n := range names {
		keys := make([]string, 0, len(report[n]))
		for k := range report[n] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Printf("%-10s %-62s %s\n", n, k, format(report[n][k]))
		}
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	fmt.Printf("\nwritten to %s\n", *out)
}

func flatten(prefix string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flatten(key, e, out)
		}
	case []any:
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	default:
		out[prefix] = v
	}
}

func format(v any) string {
	if f, ok := v.(float64); ok {
		if f == float64(int64(f)) {
			return fmt.Sprintf("%d", int64(f))
		}
		return fmt.Sprintf("%.3f", f)
	}
	return fmt.Sprint(v)
}
