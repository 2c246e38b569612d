// Package proctest helps tests run the product's binaries as real processes.
package proctest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Build compiles the package in the test's directory into dir and returns
// the binary's path. It skips the test under -short.
func Build(t testing.TB, dir, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// WaitJSON waits up to 3 minutes for path to hold a JSON object of strings, as the
// binaries' --addr-file writes once they listen.
func WaitJSON(t testing.TB, path string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, err := os.ReadFile(path)
		var m map[string]string
		if err == nil && json.Unmarshal(b, &m) == nil && len(m) > 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within 3 minutes", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// InCI tells whether the tests run in continuous integration: the CI
// environment variable is set to anything (CI services set CI=true; .ci/run
// sets it when it is not). There a tool that make test installs must be
// present, and its absence fails the test instead of skipping it.
func InCI() bool { return os.Getenv("CI") != "" }

// NeedTool ends the test when err says a tool it needs is missing: a failure
// in CI (make test installs every tool), a skip elsewhere. A nil err is no
// complaint.
func NeedTool(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("%s: %v (make test installs it)", what, err)
	}
	t.Skipf("%s: %v (make test installs it; a failure when CI is set)", what, err)
}
