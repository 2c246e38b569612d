package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
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
// Chromium, a Megvii and a Baidu page are opened in the browser. The test
// reads what happened from devstack's summary (--summary-out), field by
// field.
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
	summaryFile := filepath.Join(t.TempDir(), "summary.json")
	cmd := exec.Command(filepath.Join(bin, "devstack"), "--bin", bin, "--data-dir", data, "--free-ports", "--exit-after-workload", "--chaos", "--chaos-seed=7", "--replicas=2", "--large",
		"--megvii=30", "--megvii-no-callback=0", "--megvii-expired=3", "--baidu=12", "--baidu-never=2", "--timeout=4m", "--summary-out", summaryFile)
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
	b, err := os.ReadFile(summaryFile)
	if err != nil {
		t.Fatalf("no summary: %v\n%s", err, out)
	}
	var sm Summary
	if err := json.Unmarshal(b, &sm); err != nil {
		t.Fatalf("summary: %v\n%s", err, b)
	}
	t.Logf("devstack's output:\n%s", out)
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	// The workload: every verification its record, nothing unexpected.
	check("ok", sm.OK, true)
	check("verifications", sm.Verifications, 49)
	check("records", sm.Records, 49)
	check("missing", sm.Missing, 0)
	check("unexpected", len(sm.Unexpected), 0)
	check("Megvii verifications never registered (callback only)", sm.Entries[entryCallbackOnly], 5)
	check("Megvii answers served twice", sm.ServedTwice, 0)
	check("objects found in the store", sm.ObjectsPresent, sm.ObjectsReferenced)
	if mb := float64(sm.Media.LargestBytes) / 1e6; mb < 199.95 || mb >= 200.05 {
		t.Errorf("largest media object %.1f MB, want the 200 MB video", mb)
	}
	// Chaos: every step done, each component of it.
	if sm.Chaos == nil || sm.Chaos.Seed != 7 {
		t.Fatalf("chaos %+v, want seed 7", sm.Chaos)
	}
	var done []string
	for _, st := range sm.Chaos.Done {
		done = append(done, string(st.Kind)+" "+strings.SplitN(st.Target, "-", 2)[0])
	}
	check("chaos steps done", strings.Join(done, ", "), "kill archiver, kill when its group is stable harvester, kill ingest, kill the ledger ledger, stop and restart devkafka, store outage store")
	// The outage must have struck work in flight, or it tested nothing.
	if sm.StoreRetries == 0 {
		t.Error("the store outage met no archiving work")
	}
	// The abuse step: a replayed callback acknowledged twice with the same
	// ce_id, a forged callback and a forged landing refused.
	if sm.Abuse == nil {
		t.Fatal("no abuse step")
	}
	check("abuse", *sm.Abuse, abuseResult{Replayed: [2]int{200, 200}, SameCEID: true, ForgedCallback: 401, ForgedLanding: 401})
	// The audit check: every verification shown by faceharvest and on the
	// page, one audit event per view, and faceid.results restored by a
	// replay from the store byte for byte.
	a := sm.Audit
	if a == nil {
		t.Fatal("no audit check in the summary")
	}
	check("audit: passed", a.Passed, true)
	check("audit: records", a.Records, 49)
	check("audit: shown by faceharvest", a.Shown, 49)
	check("audit: pages answered 200", a.Pages, 49)
	check("audit: ce_ids back with identical bytes", a.Identical, 49)
	check("audit: others replayed", a.Replayed-a.Identical, 0)
	check("audit: replayed records changed", a.ReplayChanged, 0)
	check("audit: events", a.Events, a.Views)
	if a.Media == 0 {
		t.Error("the audit check opened no media")
	}
	// With Chromium (always in CI) one Megvii and one Baidu page of
	// the workload were opened in the browser, their DOM and images checked.
	if _, err := webtest.Chromium(); err == nil || proctest.InCI() {
		if len(a.Browsed) != 2 || !strings.HasPrefix(a.Browsed[0], "megvii:") || !strings.HasPrefix(a.Browsed[1], "baidu:") {
			t.Errorf("browser opened %v, want a Megvii and a Baidu page", a.Browsed)
		}
		for _, v := range []string{"megvii", "baidu"} {
			if st, err := os.Stat(filepath.Join(data, "screenshots", "auditor-"+v+".png")); err != nil || st.Size() == 0 {
				t.Errorf("screenshot of a %s page: %v", v, err)
			}
		}
	}
	// The evidence log, grown while archivers were killed: every
	// verification exactly once, one bundle verified, a tampered copy refused.
	l := sm.Ledger
	if l == nil {
		t.Fatal("no evidence log in the summary")
	}
	check("ledger: index entries", l.Indexed, 49)
	check("ledger: leaves", l.Leaves, int64(49))
	if !strings.Contains(l.Verified, "OK: ") || !strings.Contains(l.Verified, "the index entry is leaf ") {
		t.Errorf("faceharvest verify of %s printed %q", l.Bundle, l.Verified)
	}
	if !strings.Contains(l.Refused, "REFUSED: ") {
		t.Errorf("faceharvest verify of a copy with one byte of %s changed printed %q", l.Tampered, l.Refused)
	}
}
