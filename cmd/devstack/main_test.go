package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/audit/web/webtest"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/proctest"
)

// TestPipelineEndToEndWithKills runs the whole pipeline as processes over
// TCP, as make run does, with two harvester and two archiver replicas, a
// Megvii answer of about 20 MiB and a 200 MB Baidu video among the
// verifications; in the
// middle of the workload ingest, a harvester and an archiver are SIGKILLed
// and restarted, the broker is stopped and restarted from its data
// directory, and the object store is down until an archiver met it. devstack exits 0 only
// when every registered verification has its expected record on the results
// topic under its ce_id (re-published ones identical), no Megvii verification
// with an acknowledged callback was left to its last chance, every object a
// record references exists in the store, and no Megvii answer was served
// twice. Five Megvii verifications are never registered (callback only);
// after the records, a callback is replayed twice (same ce_id, no new
// record) and one is forged (401). Then the audit check: the built
// faceharvest shows every verification with its published record, the
// audit page answers every page and medium, faceid.audit holds one event
// per view, and faceid.results, deleted and created again, gets every
// record back from a replay of the store with identical bytes. With
// Chromium, a Megvii and a Baidu page are opened in the browser.
func TestPipelineEndToEndWithKills(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	wd, _ := os.Getwd()
	minio, err := devs3.Binary(wd)
	proctest.NeedTool(t, "minio", err)
	bin := t.TempDir()
	root := filepath.Join(wd, "..", "..")
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/devkafka", "./cmd/vendorsim", "./cmd/ingest", "./cmd/harvester", "./cmd/archiver", "./cmd/auditor", "./cmd/ledger", "./cmd/faceharvest", "./cmd/devstack")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Join(bin, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(minio, filepath.Join(bin, "tools", "minio")); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	cmd := exec.Command(filepath.Join(bin, "devstack"), "--bin", bin, "--data-dir", data, "--free-ports", "--exit-after-workload", "--chaos", "--chaos-seed=7", "--replicas=2", "--large",
		"--megvii=30", "--megvii-no-callback=0", "--megvii-expired=3", "--baidu=12", "--baidu-never=2", "--timeout=4m")
	out, err := cmd.CombinedOutput()
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(data, "logs", "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("--- %s (tail)\n%s", filepath.Base(l), b)
		}
		t.Fatalf("devstack: %v\n%s", err, out)
	}
	for _, want := range []string{"records: 49 of 49", "largest media object: 200.0 MB", "chaos: archiver", "chaos: harvester", "chaos: ingest killed", "chaos: ledger killed",
		"chaos: devkafka stopped", "chaos: object store back", "served twice (a spent call repeated): 0",
		"5 never registered, callback only", "abuse: replayed callback: 200 then 200, same ce_id true; forged callback: 401; forged landing: 401"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The audit check: every verification shown by faceharvest and on the
	// page, one audit event per view, and faceid.results restored by a
	// replay from the store byte for byte.
	for _, want := range []string{"faceharvest show:  49 of 49 verifications answered with the record published", "audit page:        49 of 49 pages answered 200",
		"49 of 49 ce_ids back with identical bytes, 0 others", "(changed 0)", "audit check passed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`(\d+) media answered 200`).FindSubmatch(out); m == nil || string(m[1]) == "0" {
		t.Errorf("the audit check opened no media:\n%s", out)
	}
	if m := regexp.MustCompile(`audit events: +(\d+) on faceid.audit for (\d+) views`).FindSubmatch(out); m == nil || string(m[1]) != string(m[2]) {
		t.Errorf("audit events do not match the views:\n%s", out)
	}
	// With Chromium (always in CI) one Megvii and one Baidu page of
	// the workload were opened in the browser, their DOM and images checked.
	if _, err := webtest.Chromium(); err == nil || proctest.InCI() {
		if !strings.Contains(string(out), "browser:           headless Chromium logged in and opened megvii:") {
			t.Errorf("no browser check:\n%s", out)
		}
		for _, v := range []string{"megvii", "baidu"} {
			if st, err := os.Stat(filepath.Join(data, "screenshots", "auditor-"+v+".png")); err != nil || st.Size() == 0 {
				t.Errorf("screenshot of a %s page: %v", v, err)
			}
		}
	}
	// The evidence log, grown while archivers were killed: every
	// verification exactly once, one bundle verified, a tampered copy refused.
	for _, want := range []string{"ledger check: 49 index entries, 49 leaves, each exactly once", "OK: ", "the index entry is leaf ", "REFUSED: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The outage must have struck work in flight, or it tested nothing.
	if m := regexp.MustCompile(`store operations retried: (\d+)`).FindSubmatch(out); m == nil || string(m[1]) == "0" {
		t.Errorf("the store outage met no archiving work:\n%s", out)
	}
}
