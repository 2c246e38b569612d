package deploy

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// Every binary answers --version with its build (what operators compare with
// the faceharvest_build_info metric) and exits 0.
func TestVersion(t *testing.T) {
	for _, c := range []string{"ingest", "harvester", "archiver", "auditor", "ledger", "vendorsim", "devkafka", "devstack"} {
		bin := filepath.Join(t.TempDir(), c)
		build := exec.Command("go", "build", "-o", bin, "./cmd/"+c)
		build.Dir = root(t)
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, b)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil || !regexp.MustCompile(`^`+c+` \S+ \(revision \S+, go1\.\d+`).Match(out) {
			t.Errorf("%s --version: %v: %q", c, err, out)
		}
	}
}
