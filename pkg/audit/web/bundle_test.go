package web

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ledger"
)

// bundleFixture is the page over a bucket whose verifications are leaves
// of an evidence log, offering bundles built with the log's key; it
// returns the key's verifier.
func bundleFixture(t *testing.T, mod func(*Config)) (*fixture, note.Verifier) {
	t.Helper()
	x := &audit.Exporter{}
	f := newFixture(t, func(c *Config) {
		c.Bundles, c.BundleDir = x, t.TempDir()
		if mod != nil {
			mod(c)
		}
	})
	vkey := audittest.LogRecords(t, f.bucket, f.recs["megvii:biz-m-1"], f.recs["baidu:vt-b-1"], f.recs["megvii:biz-m-2"])
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	x.Log, x.Key = ledger.Reader{Bucket: f.bucket}, v
	x.Trail = func(ctx context.Context, vendor contract.Vendor, id string) ([]byte, error) {
		return audit.ReadTrail(ctx, bus.Cluster{Brokers: []string{f.broker.Addr()}}, contract.DefaultAuditTopic, vendor, id)
	}
	return f, v
}

// TestBundleForIdentityRole: the record page offers the identity role the
// verification's evidence bundle, which verifies with the log's key alone
// and whose export is one audit event naming who, which verification and
// every object exported; a viewer sees no offer and is refused 403, with
// nothing recorded.
func TestBundleForIdentityRole(t *testing.T) {
	f, v := bundleFixture(t, nil)
	const path = "/v/megvii/biz-m-1/bundle"
	if _, body := f.do(req{path: "/v/megvii/biz-m-1", header: bearer(identityToken)}); !strings.Contains(body, `action="`+path+`"`) {
		t.Errorf("the identity role's record page offers no bundle (%d bytes)", len(body))
	}
	if _, body := f.do(req{path: "/v/megvii/biz-m-1", header: bearer(viewerToken)}); strings.Contains(body, "/bundle") || strings.Contains(body, "download-bundle") {
		t.Errorf("a viewer's record page offers the bundle")
	}
	_ = f.eventsUpToSentinel()
	if resp, _ := f.do(req{method: "POST", path: path, header: bearer(viewerToken)}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer's bundle: %d, want 403", resp.StatusCode)
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Errorf("a refused bundle wrote events %+v", es)
	}

	h := bearer(identityToken)
	h["X-Request-Id"] = "export-1"
	resp, body := f.do(req{method: "POST", path: path, header: h})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="megvii-biz-m-1-bundle.zip"` {
		t.Fatalf("bundle: %d %v", resp.StatusCode, resp.Header)
	}
	rep, err := ledger.VerifyBundle(bytes.NewReader([]byte(body)), int64(len(body)), v)
	if err != nil {
		t.Fatalf("the bundle does not verify: %v", err)
	}
	if rep.Entry.Vendor != contract.Megvii || rep.Entry.VerificationID != "biz-m-1" || len(rep.Objects) < 3 {
		t.Fatalf("the bundle proved %s", rep)
	}
	var exports []contract.AuditEvent
	for _, e := range sinceLastSentinel(f.eventsUpToSentinel()) {
		if e.Action == contract.AuditExport {
			exports = append(exports, e)
		}
	}
	if len(exports) != 1 {
		t.Fatalf("export events %+v", exports)
	}
	e := exports[0]
	if e.Viewer != "Ida Identity" || e.Role != contract.RoleIdentity || e.RequestID != "export-1" || e.Vendor != contract.Megvii || e.VerificationID != "biz-m-1" ||
		e.BizNo != "loan-42" || !e.IdentityUnmasked || !e.At.Equal(f.clock()) || len(e.LinkedKeys) != len(rep.Objects) {
		t.Errorf("export event %+v", e)
	}
}

// TestBundleRefusedCrossSite: a bundle posted from another site (by the
// browser's Sec-Fetch-Site, or its Origin) is refused 403 and records
// nothing, whatever credentials the victim's browser carries.
func TestBundleRefusedCrossSite(t *testing.T) {
	f, _ := bundleFixture(t, nil)
	_ = f.eventsUpToSentinel()
	for name, hdr := range map[string]map[string]string{
		"cross-site":               {"Sec-Fetch-Site": "cross-site"},
		"same-site":                {"Sec-Fetch-Site": "same-site"},
		"another origin":           {"Origin": "https://evil.example"},
		"origin null, no metadata": {"Origin": "null"},
	} {
		hdr["Authorization"] = "Bearer " + identityToken
		if resp, _ := f.do(req{method: "POST", path: "/v/megvii/biz-m-1/bundle", header: hdr, form: url.Values{}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a bundle posted %s: %d, want 403", name, resp.StatusCode)
		}
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Errorf("cross-site bundles wrote events %+v", es)
	}
	// The page's own form, as a browser posts it.
	h := map[string]string{"Authorization": "Bearer " + identityToken, "Origin": "null", "Sec-Fetch-Site": "same-origin"}
	if resp, _ := f.do(req{method: "POST", path: "/v/megvii/biz-m-1/bundle", header: h, form: url.Values{}}); resp.StatusCode != 200 {
		t.Errorf("the page's own bundle form: %d, want 200", resp.StatusCode)
	}
}

// TestUnrecordedBundleIsNotSent: an export whose audit event cannot be
// written sends nothing of the bundle.
func TestUnrecordedBundleIsNotSent(t *testing.T) {
	f, _ := bundleFixture(t, func(c *Config) { c.Recorder = failingRecorder{} })
	resp, body := f.do(req{method: "POST", path: "/v/megvii/biz-m-1/bundle", header: bearer(identityToken)})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") == "application/zip" || strings.HasPrefix(body, "PK") {
		t.Errorf("an unrecorded export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
