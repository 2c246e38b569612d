package web

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
)

// browserPath is how a browser reads a Location header: tabs and newlines
// are dropped and a backslash is a slash.
func browserPath(loc string) string {
	return strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(loc)
}

// TestLoginNextStaysOnSite: whatever next a login form carries, the
// browser is sent to a path of this site, never to another host.
func TestLoginNextStaysOnSite(t *testing.T) {
	f := newFixture(t, nil)
	for _, next := range []string{"//evil.example/", "/\\evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/a/../\\evil.example/", "/./\\evil.example",
		"https://evil.example/", "/%09/evil.example", "\\\\evil.example", "/v/../\t/evil.example"} {
		resp, _ := f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}, "next": {next}}, header: map[string]string{"Origin": f.url}})
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/") || strings.HasPrefix(browserPath(loc), "//") {
			t.Errorf("next %q: %d to %q", next, resp.StatusCode, loc)
		}
	}
	// A 401's login form carries the asked-for path as next.
	_, body := f.do(req{path: "/v/megvii/biz-m-1?x=%09"})
	if !strings.Contains(body, `name="next" value="/v/megvii/biz-m-1?x=%09"`) {
		t.Errorf("the 401 login form lost its next:\n%s", body)
	}
}

// TestProxyHeadersOnce: a proxy that appends its headers to the client's
// (rather than replacing them) must not let the client choose the role or
// the name: a user or role header given more than once is not believed.
func TestProxyHeadersOnce(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ProxyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	do := func(h http.Header) int {
		hr, _ := http.NewRequest("GET", f.url+"/v/megvii/biz-m-1/identity", nil)
		hr.Header = h
		hr.Header.Set(ProxySecretHeader, proxySecret)
		resp, err := f.client.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := do(http.Header{"X-Forwarded-User": {"carol@example.com"}, "X-Forwarded-Role": {"identity", "viewer"}}); c == 200 {
		t.Errorf("a client's role header before the proxy's: %d", c)
	}
	if c := do(http.Header{"X-Forwarded-User": {"mallory", "carol@example.com"}, "X-Forwarded-Role": {"identity"}}); c == 200 {
		t.Errorf("a client's user header before the proxy's: %d", c)
	}
	if c := do(http.Header{"X-Forwarded-User": {"carol@example.com"}, "X-Forwarded-Role": {"identity"}}); c != 200 {
		t.Errorf("one user and one role header: %d", c)
	}
	es := sinceLastSentinel(f.eventsUpToSentinel())
	if len(es) != 1 || es[0].Viewer != "carol@example.com" {
		t.Fatalf("events %+v", es)
	}
}

// TestTamperedMediaNotShown: an object whose bytes no longer match the
// SHA-256 its record names is not sent as the verification's evidence.
func TestTamperedMediaNotShown(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.recs["megvii:biz-m-1"]
	n := -1
	for i, m := range mediaOf(rec) {
		if m.Status == contract.MediaStored && strings.HasPrefix(m.ContentType, "image/") {
			n = i
			break
		}
	}
	if n < 0 {
		t.Fatal("no stored image")
	}
	m := mediaOf(rec)[n]
	forged := append(audittest.JPEG(99), "forged"...)
	if err := f.bucket.Put(context.Background(), m.Key, bytes.NewReader(forged), int64(len(forged)), m.ContentType, nil); err != nil {
		t.Fatal(err)
	}
	resp, body := f.do(req{path: "/v/megvii/biz-m-1/media/" + itoa(n), header: bearer(viewerToken)})
	if resp.StatusCode == 200 || strings.Contains(body, "forged") {
		t.Fatalf("a tampered image: %d, %d bytes sent", resp.StatusCode, len(body))
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Errorf("a tampered image that was not shown wrote %+v", es)
	}
	// An object too large to check before sending: its end is held back,
	// and the answer is cut short when the end proves it altered.
	big := append(bytes.Repeat([]byte{0xff}, 3*verifyAhead), "forged-end"...)
	if err := f.bucket.Put(context.Background(), m.Key, bytes.NewReader(big), int64(len(big)), m.ContentType, nil); err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest("GET", f.url+"/v/megvii/biz-m-1/media/"+itoa(n), nil)
	hr.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := f.client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || bytes.Contains(got, []byte("forged-end")) || len(got) >= len(big) {
		t.Fatalf("a large tampered object: %d, %d of %d bytes, read error %v", resp.StatusCode, len(got), len(big), err)
	}
	// Its view was recorded once: bytes were shown.
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 1 || es[0].ObjectKey != m.Key {
		t.Errorf("events of the cut-short view: %+v", es)
	}
}

// TestHeadIsNotAView: HEAD on a view writes no audit event (it would
// record as seen what nobody was shown).
func TestHeadIsNotAView(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []string{"/v/megvii/biz-m-1", "/v/megvii/biz-m-1/identity", "/v/megvii/biz-m-1/media/0", "/v/megvii/biz-m-1/evidence", "/search?q=loan-42"} {
		resp, _ := f.do(req{method: "HEAD", path: p, header: bearer(identityToken)})
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("HEAD %s: %d, want 405", p, resp.StatusCode)
		}
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Fatalf("HEAD requests wrote %d events: %+v", len(es), es)
	}
}

// TestFailedTokensLimited: after FailedTokenBurst wrong tokens from an
// address (bearer or login form), its next tries are answered 429 with
// Retry-After without the token being checked, the right token included,
// until the bucket refills; a session opened before keeps working.
func TestFailedTokensLimited(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.FailedTokenBurst, c.FailedTokenEvery = 3, 10*time.Second })
	origin := map[string]string{"Origin": f.url}
	resp, _ := f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}}, header: origin})
	session := resp.Cookies()[0]
	for i, r := range []req{
		{path: "/v/megvii/biz-m-1", header: bearer("guess-0000000000000001")},
		{method: "POST", path: "/login", form: url.Values{"token": {"guess-0000000000000002"}}, header: origin},
		{path: "/", header: bearer("guess-0000000000000003")},
	} {
		if resp, _ := f.do(r); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i, resp.StatusCode)
		}
	}
	for _, r := range []req{
		{path: "/v/megvii/biz-m-1", header: bearer(viewerToken)},
		{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}}, header: origin},
	} {
		resp, body := f.do(r)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "10" || len(resp.Cookies()) != 0 || strings.Contains(body, "loan-42") {
			t.Fatalf("%s %s after the burst: %d, Retry-After %q, cookies %v", r.method, r.path, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Cookies())
		}
	}
	if resp, _ := f.do(req{path: "/v/megvii/biz-m-1", cookie: session}); resp.StatusCode != 200 {
		t.Fatalf("a session while the address is limited: %d", resp.StatusCode)
	}
	f.advance(10 * time.Second)
	if resp, _ := f.do(req{path: "/v/megvii/biz-m-1", header: bearer(viewerToken)}); resp.StatusCode != 200 {
		t.Fatalf("the right token once refilled: %d", resp.StatusCode)
	}
	if got := metricstest.Sum(t, f.reg, "faceharvest_auditor_auth_failures_total", "reason=too_many_failures"); got != 2 {
		t.Errorf("too_many_failures %v, want 2", got)
	}
}

// hostile is what a vendor or a customer could put into a record's
// strings.
const hostile = `"><script>alert(1)</script><img src=x onerror=alert(1)>javascript:alert(1)`

// TestHostileRecordStrings: every string of a record (ids, biz_no, vendor
// codes and messages, names, keys) is rendered as text: no tag, attribute
// or link of its own reaches the page, and every link stays on the site.
func TestHostileRecordStrings(t *testing.T) {
	p, err := loadPages()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{pages: p}
	id := "a/../../" + hostile
	score, thr := 0.9, 0.8
	rec := contract.Record{Vendor: contract.Baidu, VerificationID: id, BizNo: hostile, Outcome: hostile, Reason: hostile, FlowStatus: hostile, Landing: hostile,
		Passed: new(bool), Schema: hostile, MediaRecording: hostile, Problems: []string{hostile},
		Identity:  &contract.Identity{Name: hostile, IDNumber: hostile, Source: hostile, Masked: true},
		Liveness:  &contract.Liveness{Result: hostile, Procedure: hostile, Attacks: []contract.Attack{{Kind: hostile}}},
		FaceMatch: []contract.FaceMatch{{Source: hostile, Error: hostile, Score: &score, Thresholds: map[string]float64{hostile: thr}}},
		Attempts:  []contract.Attempt{{Order: 1, Code: hostile, Message: hostile, VerifiedAt: hostile, ChargeType: hostile, RiskLevel: hostile, Charged: true, Score: &score, Threshold: &thr}},
		Media: []contract.MediaRef{{Kind: hostile, Endpoint: hostile, Status: contract.MediaStored, Reason: hostile, ObjectRef: contract.ObjectRef{Key: hostile, SHA256: hostile, ContentType: "image/" + hostile, Size: 10}},
			{Kind: hostile, Status: contract.MediaStored, ObjectRef: contract.ObjectRef{Key: "k2", ContentType: "video/" + hostile}, Attempt: 1}},
		Responses: []contract.ResponseIn{{ID: hostile, Endpoint: hostile, ErrorClass: hostile}},
		Evidence:  &contract.ObjectRef{Key: hostile}}
	hr := httptest.NewRequest("GET", "/", nil)
	for name, d := range map[string]struct {
		page string
		data any
	}{
		"verification": {"verification", newVerificationView(rec, &contract.Identity{Name: hostile, IDNumber: hostile}, Principal{Name: hostile, Role: contract.RoleIdentity})},
		"search":       {"search", searchData{Query: hostile, Total: 1, Results: []summary{summarize(rec)}}},
		"error":        {"error", errorData{Code: 404, Status: "Not Found", Message: "The store holds no verification " + hostile}},
		"login":        {"login", loginData{Next: nextPath("/" + hostile), Message: hostile}},
	} {
		var b bytes.Buffer
		if err := p.execute(&b, d.page, s.frame(hr, Principal{Name: hostile, Role: contract.RoleIdentity, Method: "bearer"}, d.data)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := b.String()
		for _, bad := range []string{"<script", "<img src=x", `href="javascript`, `src="javascript`} {
			if strings.Contains(out, bad) {
				t.Errorf("%s page holds %q", name, bad)
			}
		}
		for _, attr := range []string{`href="`, `src="`, `action="`} {
			for rest := out; ; {
				i := strings.Index(rest, attr)
				if i < 0 {
					break
				}
				rest = rest[i+len(attr):]
				if !strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "//") {
					t.Errorf("%s page: %s%.40s leaves the site", name, attr, rest)
				}
			}
		}
	}
	// The evidence download's file name is the verification's, as a
	// plain token: nothing that could end or extend the header.
	if fn := attachmentName(contract.Baidu, "x\";\r\n evil=1\x00\\/ü"); strings.ContainsAny(fn, "\";\r\n\x00\\/ ü") {
		t.Errorf("attachment name %q", fn)
	}
}
