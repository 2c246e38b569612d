package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/audit/web/webtest"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/proctest"
)

// need skips the test without tool, or fails it in CI (proctest.NeedTool).
func need(t *testing.T, what string, err error) {
	t.Helper()
	proctest.NeedTool(t, what, err)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// repoRoot is the module's root: the test artefacts go under its bin/.
func repoRoot(t *testing.T) string {
	d, _ := os.Getwd()
	for ; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.mod above the test")
		}
	}
}

type auditorProc struct {
	url, metrics string
	cmd          *exec.Cmd
	stderr       *bytes.Buffer
}

// startAuditor runs the built binary over the bucket and broker.
func startAuditor(t *testing.T, bin, broker string, s3 *devs3.Server, bucket, tokens string, args ...string) *auditorProc {
	t.Helper()
	p := &auditorProc{url: "http://" + freeAddr(t), metrics: freeAddr(t), stderr: &bytes.Buffer{}}
	argv := append([]string{"--kafka-brokers", broker, "--listen", strings.TrimPrefix(p.url, "http://"), "--metrics-addr", p.metrics,
		"--s3-endpoint", s3.Endpoint, "--s3-bucket", bucket, "--tokens-file", tokens, "--cookie-secure=false"}, args...)
	p.cmd = exec.Command(bin, argv...)
	p.cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3.User, "AWS_SECRET_ACCESS_KEY="+s3.Password, "AWS_EC2_METADATA_DISABLED=true",
		SessionKeyEnv+"=browser-test-session-key-0123456789-0123456789")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("auditor's log:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get("http://" + p.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("auditor not ready within 30 s:\n%s", p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// auditEvents reads the audit topic (one partition) until it holds n
// events, and a little past: more than n fails.
func auditEvents(t *testing.T, broker string, untilRequestID string) []contract.AuditEvent {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(contract.DefaultAuditTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out []contract.AuditEvent
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no audit event of request %s within 30 s; read %d", untilRequestID, len(out))
		}
		for _, r := range fs.Records() {
			var e contract.AuditEvent
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
			if e.RequestID == untilRequestID {
				return out
			}
		}
	}
}

// TestBrowserShowsVerification: verifications archived into MinIO by the
// real archiver, the auditor binary over that bucket and the embedded
// broker, and headless Chromium: a page opened without a session gets the
// login form (401), a token typed into it opens the verification's page,
// whose DOM shows the record's fields and whose every image loaded
// (naturalWidth > 0); a screenshot of each page is kept under
// bin/test-artifacts. The audit topic then holds exactly one event per page
// and per image, and none for the 401 or the login.
func TestBrowserShowsVerification(t *testing.T) {
	chromium, err := webtest.Chromium()
	need(t, "headless Chromium (Debian's chromium package)", err)
	devs3test.Binary(t) // without MinIO, skip before the build
	bin := proctest.Build(t, t.TempDir(), "auditor")

	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s3, bucket := audittest.MinIOBucket(t)
	decided := time.Date(2026, 1, 15, 9, 30, 0, 0, time.UTC)
	recs := audittest.Archive(t, bucket,
		audittest.Verification{Vendor: contract.Megvii, ID: "biz-browser-1", BizNo: "loan-browser", DecidedAt: decided, Seed: 5},
		audittest.Verification{Vendor: contract.Baidu, ID: "vt-browser-1", BizNo: "loan-browser", DecidedAt: decided.Add(time.Hour), Seed: 6})

	broker, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{contract.DefaultAuditTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	tokens := filepath.Join(t.TempDir(), "tokens")
	const token = "browser-test-token-0123456789"
	const identityToken = "browser-test-identity-token-0123456789"
	if err := os.WriteFile(tokens, []byte(token+" viewer Compliance Officer\n"+identityToken+" identity Ida Identity\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logKey := audittest.LogRecords(t, bucket, recs...)
	p := startAuditor(t, bin, broker.Addr(), s3, "evidence", tokens, "--log-key", logKey, "--bundle-dir", t.TempDir())

	artefacts := filepath.Join(repoRoot(t), "bin", "test-artifacts")
	if err := os.MkdirAll(artefacts, 0o755); err != nil {
		t.Fatal(err)
	}
	br, err := webtest.Start(chromium)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()

	wantEvents := 0
	for i, rec := range recs {
		path := "/v/" + string(rec.Vendor) + "/" + rec.VerificationID
		if i == 0 {
			// No session yet: the login form, then the page it leads to.
			form, err := br.Login(p.url+path, token)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(form, "Log in") {
				t.Fatalf("before login the browser showed %q", form)
			}
		} else if err := br.Open(p.url + path); err != nil {
			t.Fatal(err)
		}
		page, err := br.Read()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, problem := range webtest.Check(page, rec, p.url+path, "Compliance Officer") {
			t.Errorf("%s: %s", path, problem)
		}
		if len(page.Images) == 0 {
			t.Errorf("%s: no image on the page", path)
		}
		wantEvents += 1 + len(page.Images)
		for _, secret := range []string{audittest.MegviiIDNumber, audittest.BaiduIDNumber, audittest.MegviiName, audittest.BaiduName} {
			if strings.Contains(page.Text, secret) {
				t.Errorf("%s: a viewer's page shows the unmasked %q", path, secret)
			}
		}
		file := filepath.Join(artefacts, "auditor-"+string(rec.Vendor)+".png")
		if err := br.Screenshot(file); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot of %s: %s", path, file)
	}

	// A last view by plain HTTP with a known request id closes the topic's
	// reading: every event before it is the browser's.
	req, _ := http.NewRequest("GET", p.url+"/v/megvii/biz-browser-1", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", "browser-test-last")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	es := auditEvents(t, broker.Addr(), "browser-test-last")
	if got := len(es) - 1; got != wantEvents {
		t.Errorf("the audit topic holds %d events of the browser's views, want %d (one per page and per image)", got, wantEvents)
	}
	counts := map[string]int{}
	for _, e := range es {
		counts[e.Action]++
		if e.Viewer != "Compliance Officer" || e.Role != contract.RoleViewer || e.IdentityUnmasked {
			t.Errorf("event %+v", e)
		}
	}
	t.Logf("audit events: %v", counts)

	// The identity role's evidence bundle, by plain HTTP: the binary offers
	// it with --log-key, it verifies with the log's key alone, and its
	// export is an event.
	exportBundle(t, p, broker.Addr(), logKey)

	// SIGTERM: the process drains and exits 0.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("auditor exit after SIGTERM: %v\n%s", err, p.stderr.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("auditor still running 3 minutes after SIGTERM")
	}
}

func exportBundle(t *testing.T, p *auditorProc, broker, logKey string) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.url+"/v/megvii/biz-browser-1/bundle", nil)
	req.Header.Set("Authorization", "Bearer browser-test-identity-token-0123456789")
	req.Header.Set("X-Request-Id", "browser-test-bundle")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/zip" {
		t.Fatalf("bundle: %d %v %v", resp.StatusCode, resp.Header, err)
	}
	v, err := ledger.NewVerifier(logKey)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ledger.VerifyBundle(bytes.NewReader(body), int64(len(body)), v); err != nil || rep.Entry.VerificationID != "biz-browser-1" {
		t.Fatalf("the bundle does not verify: %v", err)
	}
	es := auditEvents(t, broker, "browser-test-bundle")
	if e := es[len(es)-1]; e.Action != contract.AuditExport || e.Viewer != "Ida Identity" || e.Role != contract.RoleIdentity || e.VerificationID != "biz-browser-1" || len(e.LinkedKeys) == 0 {
		t.Errorf("export event %+v", e)
	}
}
