package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
)

// logEntries makes the world's verifications but the last leaves of an
// evidence log in its bucket and returns the log's public key.
func (w *world) logEntries(t *testing.T) string {
	t.Helper()
	return audittest.LogRecords(t, w.bucket, w.recs[:len(w.recs)-1]...)
}

// An exported bundle verifies offline with the log's public key, names
// every object of the verification, and is an audit event; a tampered
// copy is refused, and so is a verification not yet in the log.
func TestExportAndVerify(t *testing.T) {
	w := newWorld(t)
	vkey := w.logEntries(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.zip")
	if _, errs, code := w.run(t, "show", "baidu:b-1"); code != 0 {
		t.Fatalf("show: exit %d: %s", code, errs)
	}
	stdout, errs, code := w.run(t, "export", "baidu:b-1", "--out", out, "--log-key", vkey)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "wrote "+out) {
		t.Fatalf("export said %s", stdout)
	}
	var exported []contract.AuditEvent
	for _, e := range w.auditEvents(t) {
		if e.Action == contract.AuditExport {
			exported = append(exported, e)
		}
	}
	if len(exported) != 1 || exported[0].Viewer != "ana@compliance" || exported[0].VerificationID != "b-1" || !exported[0].IdentityUnmasked || len(exported[0].LinkedKeys) != 8 {
		t.Fatalf("export events %+v", exported)
	}

	// The audit trail: the show of b-1 made before the export.
	zr0, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	var trail []contract.AuditEvent
	for _, f := range zr0.File {
		if f.Name == ledger.BundleAuditTrail {
			rc, _ := f.Open()
			err = json.NewDecoder(rc).Decode(&trail)
			rc.Close()
		}
	}
	zr0.Close()
	if err != nil || len(trail) != 1 || trail[0].Action != contract.AuditRecord || trail[0].VerificationID != "b-1" || trail[0].Viewer != "ana@compliance" {
		t.Fatalf("audit trail %+v %v", trail, err)
	}
	offline := []string{"HOME=" + t.TempDir()} // no store, no brokers
	stdout, errs, code = w.runEnv(t, offline, "verify", out, "--log-key", vkey)
	if code != 0 || !strings.Contains(stdout, "OK: baidu verification b-1") || !strings.Contains(stdout, "leaf 1 of that tree") {
		t.Fatalf("verify: exit %d: %s%s", code, stdout, errs)
	}

	// One byte of one image changed.
	zb, _ := os.ReadFile(out)
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	changed := ""
	for _, f := range zr.File {
		rc, _ := f.Open()
		body, _ := io.ReadAll(rc)
		rc.Close()
		if changed == "" && strings.Contains(f.Name, "/media/") {
			body[len(body)/2] ^= 0x20
			changed = strings.TrimPrefix(f.Name, ledger.BundleObjects)
		}
		fw, _ := zw.Create(f.Name)
		_, _ = fw.Write(body)
	}
	_ = zw.Close()
	tampered := filepath.Join(dir, "tampered.zip")
	if err := os.WriteFile(tampered, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, code = w.runEnv(t, offline, "verify", tampered, "--log-key", vkey)
	if code != 1 || !strings.Contains(errs, "REFUSED: media "+changed+": its SHA-256 is") {
		t.Fatalf("tampered: exit %d: %s", code, errs)
	}

	_, errs, code = w.run(t, "export", "megvii:m-2", "--out", filepath.Join(dir, "m-2.zip"), "--log-key", vkey)
	if code != 1 || !strings.Contains(errs, "not yet in the evidence log") {
		t.Fatalf("unlogged: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "m-2.zip")); !os.IsNotExist(err) {
		t.Fatalf("a refused export left a file: %v", err)
	}

	stdout, errs, code = w.run(t, "ledger", "check", "--log-key", vkey)
	if code != 1 || !strings.Contains(stdout, "missing from the log: 1\n  index/v1/by-id/megvii/m-2.json\n") || !strings.Contains(stdout, "2 leaves") {
		t.Fatalf("ledger check: exit %d: %s%s", code, stdout, errs)
	}

	// The missing entry appended as the archivers append it, and counted
	// as done.
	c := kafka.Client{Addr: kafka.TCP(w.cluster.Brokers...)}
	if _, err := c.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: contract.DefaultLedgerLeavesTopic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	stdout, errs, code = w.run(t, "ledger", "check", "--log-key", vkey, "--append-missing")
	if code != 0 || !strings.Contains(stdout, "appended 1 missing entries to faceid.ledger.leaves") {
		t.Fatalf("ledger check --append-missing: exit %d: %s%s", code, stdout, errs)
	}
	var ms []contract.Message
	if err := bus.ReadRange(context.Background(), w.cluster, contract.DefaultLedgerLeavesTopic, 0, -1, func(m contract.Message) { ms = append(ms, m) }); err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || string(ms[0].Key) != "megvii:m-2" {
		t.Fatalf("leaves %v", ms)
	}
}
