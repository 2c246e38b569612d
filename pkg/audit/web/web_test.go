package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

const (
	viewerToken   = "viewer-token-0123456789"
	identityToken = "identity-token-0123456789"
	sessionKey    = "session-key-0123456789-0123456789-0123456789"
	proxySecret   = "proxy-secret-0123456789-0123456789-0123"
)

var decided = time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)

// fixture is the page over a bucket filled by the real archiver, writing
// audit events to the embedded broker (one partition, so the test reads
// them in order).
type fixture struct {
	t       *testing.T
	url     string
	broker  *devkafka.Broker
	reg     *prometheus.Registry
	recs    map[string]contract.Record
	now     time.Time
	mu      sync.Mutex
	tokens  string
	client  *http.Client
	sentnum int
	bucket  *objstore.Memory
	hidden  map[string]bool // keys the store answers as missing
	gets    map[string]int  // reads of each key through the page's store
}

// hidingBucket answers the fixture's hidden keys as missing objects.
type hidingBucket struct {
	objstore.Bucket
	f *fixture
}

func (h hidingBucket) gone(key string) bool {
	h.f.mu.Lock()
	defer h.f.mu.Unlock()
	return h.f.hidden[key]
}

func (h hidingBucket) Attributes(ctx context.Context, key string) (objstore.Attrs, error) {
	if h.gone(key) {
		return objstore.Attrs{}, objstore.ErrNotFound
	}
	return h.Bucket.Attributes(ctx, key)
}

func (h hidingBucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	h.f.mu.Lock()
	h.f.gets[key]++
	h.f.mu.Unlock()
	if h.gone(key) {
		return nil, objstore.ErrNotFound
	}
	return h.Bucket.Get(ctx, key)
}

// hide makes the store answer key as missing (deleted by hand, or by a
// lifecycle rule).
func (f *fixture) hide(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hidden[key] = true
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{contract.DefaultAuditTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	bucket := objstore.NewMemory()
	recs := audittest.Archive(t, bucket,
		audittest.Verification{Vendor: contract.Megvii, ID: "biz-m-1", BizNo: "loan-42", DecidedAt: decided, Seed: 1},
		audittest.Verification{Vendor: contract.Baidu, ID: "vt-b-1", BizNo: "loan-42", DecidedAt: decided.Add(time.Hour), Seed: 2},
		audittest.Verification{Vendor: contract.Megvii, ID: "biz-m-2", BizNo: "loan-7", DecidedAt: decided, Seed: 3})
	f := &fixture{t: t, broker: b, reg: prometheus.NewRegistry(), recs: map[string]contract.Record{}, now: decided.Add(90 * 24 * time.Hour), bucket: bucket,
		hidden: map[string]bool{}, gets: map[string]int{}}
	for _, r := range recs {
		f.recs[contract.Key(r.Vendor, r.VerificationID)] = r
	}
	f.tokens = filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f.tokens, []byte("# token role name\n"+viewerToken+" viewer Ana Viewer\n"+identityToken+" identity Ida Identity\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadTokens(f.tokens, f.clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Cluster{Brokers: []string{b.Addr()}}, Topic: contract.DefaultAuditTopic})
	t.Cleanup(func() { w.Close() })
	log, err := audit.NewLog(audit.LogConfig{Writer: w, Via: "auditor", Now: f.clock, Registry: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Finder, cfg.Recorder, cfg.Tokens, cfg.SessionKeys, cfg.Now, cfg.Registry = audit.NewStore(hidingBucket{Bucket: bucket, f: f}), log, tokens, [][]byte{[]byte(sessionKey)}, f.clock, f.reg
	cfg.ProxyUserHeader, cfg.ProxyRoleHeader, cfg.ProxyCIDRs = "X-Forwarded-User", "X-Forwarded-Role", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cfg.ProxySecrets = [][]byte{[]byte(proxySecret)}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

type req struct {
	method, path string
	header       map[string]string
	form         url.Values
	cookie       *http.Cookie
}

func (f *fixture) do(r req) (*http.Response, string) {
	f.t.Helper()
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	if r.method == "" {
		r.method = "GET"
	}
	hr, err := http.NewRequest(r.method, f.url+r.path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if r.form != nil {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.cookie != nil {
		hr.AddCookie(r.cookie)
	}
	resp, err := f.client.Do(hr)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, string(b)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// sentinel makes one more authenticated view and returns every audit event
// up to and including it: a request that should have written none shows as
// an extra event before it.
func (f *fixture) eventsUpToSentinel() []contract.AuditEvent {
	f.t.Helper()
	f.sentnum++
	rid := "sentinel-" + string(rune('a'+f.sentnum))
	resp, _ := f.do(req{path: "/v/megvii/biz-m-2", header: map[string]string{"Authorization": "Bearer " + viewerToken, "X-Request-Id": rid}})
	if resp.StatusCode != 200 {
		f.t.Fatalf("sentinel view: %d", resp.StatusCode)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.broker.Addr()), kgo.ConsumeTopics(contract.DefaultAuditTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out []contract.AuditEvent
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			f.t.Fatalf("sentinel event not read within 30 s; read %d", len(out))
		}
		for _, rec := range fs.Records() {
			var e contract.AuditEvent
			if err := json.Unmarshal(rec.Value, &e); err != nil {
				f.t.Fatal(err)
			}
			if string(rec.Key) != e.Viewer {
				f.t.Errorf("event keyed %q, viewer %q", rec.Key, e.Viewer)
			}
			hdr := map[string]string{}
			for _, h := range rec.Headers {
				hdr[h.Key] = string(h.Value)
			}
			if hdr[contract.HeaderType] != contract.TypeAudit || hdr[contract.HeaderID] != e.ID {
				f.t.Errorf("event headers %v", hdr)
			}
			out = append(out, e)
			if e.RequestID == rid {
				return out
			}
		}
	}
}

// sinceLastSentinel drops every event up to the previous sentinel.
func sinceLastSentinel(es []contract.AuditEvent) []contract.AuditEvent {
	last := -1
	for i, e := range es[:len(es)-1] {
		if strings.HasPrefix(e.RequestID, "sentinel-") {
			last = i
		}
	}
	return es[last+1 : len(es)-1]
}

// TestUnauthenticatedRequestsWriteNoEvent: no credentials, a wrong token, a
// malformed Authorization header, a forged or expired session cookie and a
// proxy user header from outside the trusted addresses all get 401 with the
// login form, and the audit topic holds nothing but the later
// authenticated view.
func TestUnauthenticatedRequestsWriteNoEvent(t *testing.T) {
	f := newFixture(t, nil)
	expired, _ := sessions{keys: [][]byte{[]byte(sessionKey)}, ttl: time.Hour}.issue(fingerprintOf(viewerToken), f.clock().Add(-2*time.Hour))
	forged, _ := sessions{keys: [][]byte{[]byte("another-key-0123456789-0123456789-012345")}, ttl: time.Hour}.issue(fingerprintOf(viewerToken), f.clock())
	cases := []struct {
		name   string
		r      req
		reason string
	}{
		{"no credentials", req{path: "/v/megvii/biz-m-1"}, reasonMissing},
		{"no credentials, media", req{path: "/v/megvii/biz-m-1/media/0"}, reasonMissing},
		{"no credentials, search", req{path: "/search?q=loan-42"}, reasonMissing},
		{"no credentials, home", req{path: "/"}, reasonMissing},
		{"wrong token", req{path: "/v/megvii/biz-m-1", header: bearer("not-a-token-0123456789")}, reasonBadToken},
		{"basic auth", req{path: "/v/megvii/biz-m-1", header: map[string]string{"Authorization": "Basic YTpi"}}, reasonBadToken},
		{"forged session", req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: SessionCookie, Value: forged}}, reasonBadSession},
		{"garbage session", req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: SessionCookie, Value: "v1.x.y"}}, reasonBadSession},
		{"expired session", req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: SessionCookie, Value: expired}}, reasonExpired},
		{"proxy header from a stranger", req{path: "/v/megvii/biz-m-1", header: map[string]string{"X-Forwarded-User": "mallory", "X-Forwarded-Role": "identity"}}, reasonUntrustedProxy},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := metricstest.Sum(t, f.reg, "faceharvest_auditor_auth_failures_total", "reason="+c.reason)
			resp, body := f.do(c.r)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if !strings.Contains(body, `action="/login"`) || strings.Contains(body, "biz-m-1</code>") || strings.Contains(body, "id=\"outcome\"") {
				t.Errorf("a 401 shows the login form and nothing of the verification:\n%s", body)
			}
			if got := metricstest.Sum(t, f.reg, "faceharvest_auditor_auth_failures_total", "reason="+c.reason); got != before+1 {
				t.Errorf("auth failures (%s) %v, want %v", c.reason, got, before+1)
			}
			checkHeaders(t, resp)
		})
	}
	es := f.eventsUpToSentinel()
	if len(es) != 1 {
		t.Fatalf("the audit topic holds %d events, want only the sentinel's: %+v", len(es), es)
	}
}

func fingerprintOf(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:8])
}

func checkHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "img-src 'self'", "media-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("Content-Security-Policy %q allows script or inline content", csp)
	}
	for k, v := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
}

// TestEveryViewIsOneEvent: each authenticated view (a page, the identity,
// each media object, a search, the evidence document) writes exactly one
// audit event saying what was shown; refusals (a viewer asking for the
// identity, media the verification does not list, an unknown
// verification) write none.
func TestEveryViewIsOneEvent(t *testing.T) {
	f := newFixture(t, nil)
	m1 := f.recs["megvii:biz-m-1"]
	stored := -1
	for i, m := range mediaOf(m1) {
		if m.Status == contract.MediaStored && strings.HasPrefix(m.ContentType, "image/") {
			stored = i
			break
		}
	}
	if stored < 0 {
		t.Fatal("the Megvii fixture has no stored image")
	}
	img := mediaOf(m1)[stored]
	nMedia := len(mediaOf(m1))
	type want struct {
		action              string
		viewer, role        string
		record, unmasked    bool
		objectKey           string
		vendor              contract.Vendor
		id                  string
		verifications       int
		contains, forbidden []string
	}
	cases := []struct {
		name string
		r    req
		want *want // nil: no event
		code int
	}{
		{"viewer sees the masked record", req{path: "/v/megvii/biz-m-1", header: bearer(viewerToken)},
			&want{action: contract.AuditRecord, viewer: "Ana Viewer", role: "viewer", record: true, vendor: contract.Megvii, id: "biz-m-1",
				contains:  []string{"loan-42", "harvested", m1.Identity.IDNumber, "/v/megvii/biz-m-1/media/", "window left at harvest"},
				forbidden: []string{audittest.MegviiIDNumber, audittest.MegviiName, "/identity\"", "/evidence\""}}, 200},
		{"viewer may not see the identity", req{path: "/v/megvii/biz-m-1/identity", header: bearer(viewerToken)}, nil, 403},
		{"viewer may not read the evidence", req{path: "/v/megvii/biz-m-1/evidence", header: bearer(viewerToken)}, nil, 403},
		{"identity role sees the record with a link to the identity", req{path: "/v/baidu/vt-b-1", header: bearer(identityToken)},
			&want{action: contract.AuditRecord, viewer: "Ida Identity", role: "identity", record: true, vendor: contract.Baidu, id: "vt-b-1",
				contains: []string{"/v/baidu/vt-b-1/identity", "attempts"}, forbidden: []string{audittest.BaiduIDNumber}}, 200},
		{"identity role sees the identity unmasked", req{path: "/v/megvii/biz-m-1/identity", header: bearer(identityToken)},
			&want{action: contract.AuditIdentity, viewer: "Ida Identity", role: "identity", record: true, unmasked: true, vendor: contract.Megvii, id: "biz-m-1",
				objectKey: m1.Evidence.Key, contains: []string{audittest.MegviiIDNumber, audittest.MegviiName, "unmasked"}}, 200},
		{"identity role reads the evidence document", req{path: "/v/megvii/biz-m-1/evidence", header: bearer(identityToken)},
			&want{action: contract.AuditEvidence, viewer: "Ida Identity", role: "identity", unmasked: true, vendor: contract.Megvii, id: "biz-m-1", objectKey: m1.Evidence.Key}, 200},
		{"a stored image", req{path: "/v/megvii/biz-m-1/media/" + itoa(stored), header: bearer(viewerToken)},
			&want{action: contract.AuditMedia, viewer: "Ana Viewer", role: "viewer", vendor: contract.Megvii, id: "biz-m-1", objectKey: img.Key}, 200},
		{"media past the record's list", req{path: "/v/megvii/biz-m-1/media/" + itoa(nMedia), header: bearer(viewerToken)}, nil, 404},
		{"media by a key, not a number", req{path: "/v/megvii/biz-m-1/media/" + url.PathEscape(f.recs["megvii:biz-m-2"].Media[0].Key), header: bearer(viewerToken)}, nil, 404},
		{"negative media number", req{path: "/v/megvii/biz-m-1/media/-1", header: bearer(viewerToken)}, nil, 404},
		{"unknown verification", req{path: "/v/megvii/nobody", header: bearer(viewerToken)}, nil, 404},
		{"unknown vendor", req{path: "/v/acme/biz-m-1", header: bearer(viewerToken)}, nil, 404},
		{"search by biz_no", req{path: "/search?q=loan-42", header: bearer(viewerToken)},
			&want{action: contract.AuditSearch, viewer: "Ana Viewer", role: "viewer", verifications: 2, contains: []string{"megvii:biz-m-1", "baidu:vt-b-1"}, forbidden: []string{"biz-m-2"}}, 200},
		{"search by id alone", req{path: "/search?q=biz-m-2", header: bearer(viewerToken)},
			&want{action: contract.AuditSearch, viewer: "Ana Viewer", role: "viewer", verifications: 1, contains: []string{"megvii:biz-m-2"}}, 200},
		{"search by vendor:id redirects to the page", req{path: "/search?q=megvii:biz-m-1", header: bearer(viewerToken)}, nil, 303},
		{"empty search form", req{path: "/search", header: bearer(viewerToken)}, nil, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := f.do(c.r)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d:\n%.2000s", resp.StatusCode, c.code, body)
			}
			checkHeaders(t, resp)
			es := sinceLastSentinel(f.eventsUpToSentinel())
			if c.want == nil {
				if len(es) != 0 {
					t.Fatalf("%d audit events, want none: %+v", len(es), es)
				}
				return
			}
			if len(es) != 1 {
				t.Fatalf("%d audit events, want one: %+v", len(es), es)
			}
			e, w := es[0], c.want
			if e.Action != w.action || e.Viewer != w.viewer || e.Role != w.role || e.Record != w.record || e.IdentityUnmasked != w.unmasked ||
				e.ObjectKey != w.objectKey || e.Vendor != w.vendor || e.VerificationID != w.id || len(e.Verifications) != w.verifications ||
				e.Via != "auditor" || !e.At.Equal(f.clock()) || e.RemoteAddr != "127.0.0.1" || e.RequestID != resp.Header.Get("X-Request-Id") || len(e.ID) != 32 {
				t.Errorf("event %+v, want %+v", e, *w)
			}
			for _, s := range w.contains {
				if !strings.Contains(body, s) {
					t.Errorf("the answer lacks %q", s)
				}
			}
			for _, s := range w.forbidden {
				if strings.Contains(body, s) {
					t.Errorf("the answer shows %q", s)
				}
			}
			if w.action == contract.AuditMedia {
				sum := sha256.Sum256([]byte(body))
				if hex.EncodeToString(sum[:]) != img.SHA256 || resp.Header.Get("Content-Type") != img.ContentType {
					t.Errorf("media: %s %d bytes, want the stored %s %s", resp.Header.Get("Content-Type"), len(body), img.ContentType, img.SHA256)
				}
			}
		})
	}
	if got := metricstest.Sum(t, f.reg, "faceharvest_auditor_media_bytes_total", "kind=image"); got != float64(img.Size) {
		t.Errorf("media bytes %v, want %d", got, img.Size)
	}
	if got := metricstest.Sum(t, f.reg, "faceharvest_auditor_auth_failures_total", "reason=forbidden_role"); got != 2 {
		t.Errorf("forbidden_role failures %v, want 2", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestLoginSession: the login form opens an HttpOnly, SameSite=Strict
// session only for a valid token and only from the page's own origin; the
// session authenticates views under the token's name until it expires or
// its token leaves the file; logout ends it.
func TestLoginSession(t *testing.T) {
	f := newFixture(t, nil)
	origin := map[string]string{"Origin": f.url}
	resp, _ := f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}, "next": {"/v/megvii/biz-m-1"}}, header: map[string]string{"Origin": "https://evil.example"}})
	if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("a login from another origin: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	for name, h := range map[string]map[string]string{
		"Origin null without fetch metadata": {"Origin": "null"},
		"Origin null, cross-site":            {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
		"same Origin, but cross-site":        {"Origin": f.url, "Sec-Fetch-Site": "cross-site"},
		"no Origin, same-site":               {"Sec-Fetch-Site": "same-site"},
	} {
		resp, _ := f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}}, header: h})
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("a login with %s: %d, cookies %v", name, resp.StatusCode, resp.Cookies())
		}
	}
	// What a browser sends under Referrer-Policy: no-referrer.
	if resp, _ := f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}}, header: map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a same-origin browser login with Origin null: %d", resp.StatusCode)
	}
	resp, _ = f.do(req{method: "POST", path: "/login", form: url.Values{"token": {"wrong-token-0123456789"}}, header: origin})
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("a login with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp, _ = f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}, "next": {"//evil.example/x"}}, header: origin})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("a login's next outside the site: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}, "next": {"/v/megvii/biz-m-1"}}, header: origin})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/v/megvii/biz-m-1" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == SessionCookie {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || strings.Contains(c.Value, viewerToken) {
		t.Fatalf("session cookie %+v", c)
	}
	resp, body := f.do(req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: SessionCookie, Value: c.Value}})
	if resp.StatusCode != 200 || !strings.Contains(body, "Ana Viewer") {
		t.Fatalf("a view with the session: %d", resp.StatusCode)
	}
	es := sinceLastSentinel(f.eventsUpToSentinel())
	if len(es) != 1 || es[0].Viewer != "Ana Viewer" || es[0].Action != contract.AuditRecord {
		t.Fatalf("events of the session's view: %+v", es)
	}
	tampered := strings.Replace(c.Value, fingerprintOf(viewerToken), fingerprintOf(identityToken), 1)
	if resp, _ := f.do(req{path: "/v/megvii/biz-m-1/identity", cookie: &http.Cookie{Name: SessionCookie, Value: tampered}}); resp.StatusCode != 401 {
		t.Errorf("a session altered to another token's: %d, want 401", resp.StatusCode)
	}
	resp, _ = f.do(req{method: "POST", path: "/logout", header: origin, cookie: c})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d, cookies %+v", resp.StatusCode, resp.Cookies())
	}
	f.advance(8*time.Hour + time.Second)
	if resp, _ := f.do(req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: SessionCookie, Value: c.Value}}); resp.StatusCode != 401 {
		t.Errorf("an expired session: %d, want 401", resp.StatusCode)
	}
	// A fresh session whose token is then removed from the file.
	resp, _ = f.do(req{method: "POST", path: "/login", form: url.Values{"token": {identityToken}}, header: origin})
	c = resp.Cookies()[0]
	if err := os.WriteFile(f.tokens, []byte(viewerToken+" viewer Ana Viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.advance(10 * time.Second) // past the file's check interval
	if resp, _ := f.do(req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: SessionCookie, Value: c.Value}}); resp.StatusCode != 401 {
		t.Errorf("a session of a removed token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := f.do(req{path: "/v/megvii/biz-m-1", header: bearer(identityToken)}); resp.StatusCode != 401 {
		t.Errorf("a removed token: %d, want 401", resp.StatusCode)
	}
	es = sinceLastSentinel(f.eventsUpToSentinel())
	if len(es) != 0 {
		t.Fatalf("refused requests wrote events: %+v", es)
	}
}

// TestTrustedProxy: a proxy's user header is believed from the trusted
// addresses, with its role header; from elsewhere it is ignored (401).
func TestTrustedProxy(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ProxyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	resp, body := f.do(req{path: "/v/megvii/biz-m-1/identity", header: map[string]string{"X-Forwarded-User": "carol@example.com", "X-Forwarded-Role": "identity", ProxySecretHeader: proxySecret}})
	if resp.StatusCode != 200 || !strings.Contains(body, audittest.MegviiIDNumber) || strings.Contains(body, `action="/logout"`) {
		t.Fatalf("proxied identity view: %d", resp.StatusCode)
	}
	resp, _ = f.do(req{path: "/v/megvii/biz-m-1/identity", header: map[string]string{"X-Forwarded-User": "dave@example.com", ProxySecretHeader: proxySecret}})
	if resp.StatusCode != 403 {
		t.Fatalf("proxied user without a role: %d, want 403", resp.StatusCode)
	}
	es := sinceLastSentinel(f.eventsUpToSentinel())
	if len(es) != 1 || es[0].Viewer != "carol@example.com" || es[0].Role != "identity" || !es[0].IdentityUnmasked {
		t.Fatalf("events: %+v", es)
	}
}

type failingRecorder struct{}

func (failingRecorder) Record(context.Context, contract.AuditEvent) error {
	return errors.New("not enough replicas")
}

// TestUnrecordedViewIsNotShown: when the audit event cannot be written,
// the page, the identity and the media answer 503 and show nothing.
func TestUnrecordedViewIsNotShown(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Recorder = failingRecorder{} })
	for _, p := range []string{"/v/megvii/biz-m-1", "/v/megvii/biz-m-1/identity", "/v/megvii/biz-m-1/media/0", "/v/megvii/biz-m-1/evidence", "/search?q=loan-42"} {
		resp, body := f.do(req{path: p, header: bearer(identityToken)})
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %d, want 503 with Retry-After", p, resp.StatusCode)
		}
		if strings.Contains(body, "loan-42") || strings.Contains(body, audittest.MegviiIDNumber) || strings.Contains(resp.Header.Get("Content-Type"), "image") {
			t.Errorf("%s: an unrecorded view showed the verification", p)
		}
	}
}

// TestMissingObjectIsNotFound: a media object, an evidence document or a
// record the index names but the store no longer holds is answered 404 (it
// is not there; trying again does not help), not 503, and, as every view
// that shows nothing, writes no audit event.
func TestMissingObjectIsNotFound(t *testing.T) {
	f := newFixture(t, nil)
	m1, b1 := f.recs["megvii:biz-m-1"], f.recs["baidu:vt-b-1"]
	f.hide(m1.Media[0].Key)
	f.hide(m1.Evidence.Key)
	f.hide(recordKey(t, f, b1))
	for _, p := range []string{"/v/megvii/biz-m-1/media/0", "/v/megvii/biz-m-1/evidence", "/v/megvii/biz-m-1/identity", "/v/baidu/vt-b-1"} {
		resp, body := f.do(req{path: p, header: bearer(identityToken)})
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404:\n%.500s", p, resp.StatusCode, body)
		}
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Fatalf("views that showed nothing wrote %d audit events: %+v", len(es), es)
	}
}

// recordKey is where rec is stored, from its index entry.
func recordKey(t *testing.T, f *fixture, rec contract.Record) string {
	v, err := audit.NewStore(f.bucket).Get(context.Background(), rec.Vendor, rec.VerificationID)
	if err != nil {
		t.Fatal(err)
	}
	return v.Index.Record.Key
}

func TestTokenFileErrors(t *testing.T) {
	for name, content := range map[string]string{
		"empty":        "# nothing\n",
		"short token":  "short viewer A\n",
		"unknown role": "0123456789abcdef admin A\n",
		"no name":      "0123456789abcdef viewer\n",
		"duplicate":    "0123456789abcdef viewer A\n0123456789abcdef identity B\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseTokens([]byte(content))
			if err == nil {
				t.Fatal("parsed")
			}
			if strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	metricstest.AtZero(t, reg, []string{
		"faceharvest_auditor_requests_total{code=401,route=verification}",
		"faceharvest_auditor_requests_total{code=200,route=media}",
		"faceharvest_auditor_auth_failures_total{reason=missing}",
		"faceharvest_auditor_auth_failures_total{reason=untrusted_proxy_header}",
		"faceharvest_auditor_media_bytes_total{kind=video}",
	})
}

// TestUnmatchedSearchIsNotRecorded: what a search matched is recorded (the
// biz_no it found); text that matched nothing (an ID number pasted into the
// box) is not, only its SHA-256: the audit topic holds no personal data
// the store did not already name.
func TestUnmatchedSearchIsNotRecorded(t *testing.T) {
	f := newFixture(t, nil)
	for _, c := range []struct {
		q, bizNo string
		n        int
	}{{"loan-42", "loan-42", 2}, {"biz-m-2", "", 1}, {audittest.MegviiIDNumber, "", 0}} {
		resp, body := f.do(req{path: "/search?q=" + url.QueryEscape(c.q), header: bearer(viewerToken)})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%.500s", c.q, resp.StatusCode, body)
		}
		es := sinceLastSentinel(f.eventsUpToSentinel())
		if len(es) != 1 {
			t.Fatalf("%s: %d events", c.q, len(es))
		}
		e := es[0]
		raw, _ := json.Marshal(e)
		if e.BizNo != c.bizNo || len(e.Verifications) != c.n {
			t.Errorf("%s: event biz_no %q with %d verifications, want %q with %d", c.q, e.BizNo, len(e.Verifications), c.bizNo, c.n)
		}
		sum := sha256.Sum256([]byte(c.q))
		if want := hex.EncodeToString(sum[:]); c.bizNo == "" && e.QuerySHA256 != want || c.bizNo != "" && e.QuerySHA256 != "" {
			t.Errorf("%s: query_sha256 %q", c.q, e.QuerySHA256)
		}
		if c.n == 0 && strings.Contains(string(raw), c.q) {
			t.Errorf("an unmatched search put its text on the audit topic: %s", raw)
		}
	}
}

// TestSearchReadsOnlyTheRecordsItLists: a search of a biz_no with more
// verifications than MaxSearchResults reads the records of those it lists,
// the oldest, and counts the rest.
func TestSearchReadsOnlyTheRecordsItLists(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxSearchResults = 1 })
	resp, body := f.do(req{path: "/search?q=loan-42", header: bearer(viewerToken)})
	if resp.StatusCode != 200 || !strings.Contains(body, "2 found") || !strings.Contains(body, "megvii:biz-m-1") || strings.Contains(body, "baidu:vt-b-1") {
		t.Fatalf("%d:\n%.3000s", resp.StatusCode, body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range []string{"megvii:biz-m-1", "baidu:vt-b-1"} {
		rec := f.recs[id]
		key := strings.Replace(rec.Evidence.Key, "/evidence/", "/records/", 1)
		want := 1
		if id == "baidu:vt-b-1" {
			want = 0
		}
		if f.gets[key] != want {
			t.Errorf("the search read %s's record %d times, want %d", id, f.gets[key], want)
		}
	}
}
