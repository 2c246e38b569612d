package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

const (
	landingKeyOld = "landing-key-previous-0123456789abcdef"
	landingKeyNew = "landing-key-current-0123456789abcdef"
	publicURL     = "https://kyc.example.com"
)

// landingSig computes a landing signature as documented, independently of
// the code under test, for a URL issued now to no caller, and returns it
// with the issue time's parameter: what follows "&sig=".
func landingSig(key, kind, token string) string { return landingSigFor(key, kind, token, "") }

// landingSigFor is landingSig for a URL given to caller.
func landingSigFor(key, kind, token, caller string) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("faceharvest-landing-v1\x00" + kind + "/timed\x00" + token + "\x00" + ts + "\x00" + caller))
	s := base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "&ts=" + ts
	if caller != "" {
		s += "&c=" + caller
	}
	return s
}

// signedLanding returns the path and query of a landing signed with the
// current key.
func signedLanding(t *testing.T, kind, token string) string {
	t.Helper()
	route := "/v1/callbacks/baidu/" + kind
	return route + "?verify_token=" + url.QueryEscape(token) + "&sig=" + landingSig(landingKeyNew, kind, token)
}

// TestForgedLandingPublishesNothing: a landing without a valid signature,
// and any HEAD, publishes nothing and is answered 401 (a HEAD of a signed
// URL: 405), counted.
func TestForgedLandingPublishesNothing(t *testing.T) {
	const tok = "Yz9rWITm4vak16PBAh5x8oG7"
	other := signedLanding(t, "success", "another-token-of-24chars")
	otherSig := other[strings.Index(other, "&sig=")+len("&sig="):]
	cases := []struct {
		name, method, path string
		code               int
		reason             string // faceharvest_ingest_landing_signature_failures_total, "" for none
	}{
		{"no signature", "GET", RouteBaiduSuccess + "?verify_token=" + tok, 401, "missing"},
		{"no signature, failure page", "GET", RouteBaiduFailure + "?verify_token=" + tok, 401, "missing"},
		{"empty signature", "GET", RouteBaiduSuccess + "?verify_token=" + tok + "&sig=", 401, "missing"},
		{"wrong signature", "GET", RouteBaiduSuccess + "?verify_token=" + tok + "&sig=" + strings.Repeat("A", 43), 401, "mismatch"},
		{"garbage signature", "GET", RouteBaiduSuccess + "?verify_token=" + tok + "&sig=not-a-signature", 401, "malformed_signature"},
		{"signature of another token", "GET", RouteBaiduSuccess + "?verify_token=" + tok + "&sig=" + otherSig, 401, "mismatch"},
		{"a token appended to another token's signed URL", "GET", other + "&verify_token=" + tok, 401, "mismatch"},
		{"HEAD without signature", "HEAD", RouteBaiduSuccess + "?verify_token=" + tok, 401, "missing"},
		{"no token", "GET", RouteBaiduSuccess, 400, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			r := f.do(t, c.method, c.path, "", nil, nil)
			if n := len(f.pub.envelopes(t)); n != 0 {
				t.Fatalf("a forged landing published %d events (answered %d)", n, r.code)
			}
			if r.code != c.code {
				t.Fatalf("code %d, want %d: %s", r.code, c.code, r.raw)
			}
			if c.reason != "" {
				if got := metricValue(t, f.reg, "faceharvest_ingest_landing_signature_failures_total", map[string]string{"reason": c.reason}); got != 1 {
					t.Fatalf("landing signature failures{reason=%s} = %v", c.reason, got)
				}
			}
		})
	}
}

// TestSignedLandingPublishesOnce: a landing on the URL the registration
// answered publishes one completion event, whether Baidu adds nothing,
// appends verify_token with '&' or with a second '?'; a signed URL's HEAD
// publishes nothing; rotation: a URL signed with the previous key still
// lands, and new URLs are signed with the first key.
func TestSignedLandingPublishesOnce(t *testing.T) {
	const tok = "Yz9rWITm4vak16PBAh5x8oG7"
	f := newFixture(t, nil)
	r := f.do(t, "POST", RouteTokens, "application/json", []byte(`[{"vendor":"baidu","verification_id":"`+tok+`"},{"vendor":"megvii","verification_id":"m1"}]`),
		map[string]string{"Authorization": "Bearer " + bearer})
	if r.code != 202 {
		t.Fatalf("register: %d %s", r.code, r.raw)
	}
	regs := r.body["registered"].([]any)
	b, m := regs[0].(map[string]any), regs[1].(map[string]any)
	success, _ := b["success_url"].(string)
	failure, _ := b["failure_url"].(string)
	if want := publicURL + RouteBaiduSuccess + "?verify_token=" + tok + "&sig=" + landingSigFor(landingKeyNew, "success", tok, callerID(bearer)); success != want {
		t.Fatalf("success_url %q, want %q", success, want)
	}
	if want := publicURL + RouteBaiduFailure + "?verify_token=" + tok + "&sig=" + landingSigFor(landingKeyNew, "failure", tok, callerID(bearer)); failure != want {
		t.Fatalf("failure_url %q, want %q", failure, want)
	}
	if _, ok := m["success_url"]; ok {
		t.Fatal("a Megvii entry got landing URLs")
	}
	// LandingURL signs for no caller (tests, the simulator's browser).
	if f.s.LandingURL("success", tok) != publicURL+RouteBaiduSuccess+"?verify_token="+tok+"&sig="+landingSig(landingKeyNew, "success", tok) ||
		f.s.LandingURL("failure", tok) != publicURL+RouteBaiduFailure+"?verify_token="+tok+"&sig="+landingSig(landingKeyNew, "failure", tok) || f.s.LandingURL("other", tok) != "" {
		t.Fatal("LandingURL differs from the documented URL")
	}
	path := func(u string) string { return strings.TrimPrefix(u, publicURL) }
	if r := f.do(t, "HEAD", path(success), "", nil, nil); r.code != 405 || r.header.Get("Allow") != "GET" || len(f.pub.envelopes(t)) != 2 { // the two registrations
		t.Fatalf("HEAD of a signed URL: %d, %d events", r.code, len(f.pub.envelopes(t)))
	}
	cases := []struct {
		name, path string
		code       int
		status     string
	}{
		{"as answered", path(success), 303, "success"},
		{"verify_token appended with &", path(success) + "&verify_token=" + tok, 303, "success"},
		{"verify_token appended with ?", path(failure) + "?verify_token=" + tok, 200, "failure"},
		{"signed with the previous key", RouteBaiduSuccess + "?verify_token=" + tok + "&sig=" + landingSig(landingKeyOld, "success", tok), 303, "success"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			r := f.do(t, "GET", c.path, "", nil, nil)
			envs := f.pub.envelopes(t)
			if r.code != c.code || len(envs) != 1 {
				t.Fatalf("code %d, %d events: %s", r.code, len(envs), r.raw)
			}
			var ev contract.Event
			_ = json.Unmarshal(envs[0].Value, &ev)
			if ev.VerificationID != tok || ev.Status != c.status || envs[0].Type != contract.TypeBaiduCompletion {
				t.Fatalf("event %+v", ev)
			}
		})
	}
	// The page kind is signed: a success URL's signature does not land on
	// the failure page.
	sig := success[strings.Index(success, "&sig=")+len("&sig="):]
	if r := f.do(t, "GET", RouteBaiduFailure+"?verify_token="+tok+"&sig="+sig, "", nil, nil); r.code != 401 {
		t.Fatalf("success signature on the failure page: %d", r.code)
	}
	// Only a key that is no longer configured: refused.
	g := newFixture(t, func(c *Config) { c.LandingKeys = c.LandingKeys[:1] })
	if r := g.do(t, "GET", RouteBaiduSuccess+"?verify_token="+tok+"&sig="+landingSig(landingKeyOld, "success", tok), "", nil, nil); r.code != 401 || len(g.pub.envelopes(t)) != 0 {
		t.Fatalf("a retired key: %d", r.code)
	}
}

// TestLandingConfiguration: a landing key without a public URL (or the
// reverse), a short key or a public URL with a query is refused; with
// neither, landings are refused (401) and registrations answer no URLs.
func TestLandingConfiguration(t *testing.T) {
	base := testConfig()
	key := []config.Secret{config.NewSecret(landingKeyNew)}
	for _, c := range []struct {
		keys []config.Secret
		url  string
		want string
	}{
		{key, "", "public URL"},
		{nil, publicURL, "FACEHARVEST_LANDING_KEY"},
		{[]config.Secret{config.NewSecret(landingKeyNew), config.NewSecret("short")}, publicURL, "landing key 2 of 2 is shorter"},
		{key, publicURL + "/?a=b", "no query"},
		{key, "ftp://kyc.example.com", "public URL"},
	} {
		cfg := base
		cfg.LandingKeys, cfg.PublicURL = c.keys, c.url
		_, err := New(cfg, &memPublisher{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %q: %v, want %q", c.keys, c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), landingKeyNew) {
			t.Error("the key is in the error")
		}
	}
	f := newFixture(t, func(c *Config) { c.LandingKeys, c.PublicURL = nil, "" })
	if r := f.do(t, "GET", signedLanding(t, "success", "tok"), "", nil, nil); r.code != 401 || len(f.pub.envelopes(t)) != 0 {
		t.Fatalf("landing without keys: %d", r.code)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_landing_signature_failures_total", map[string]string{"reason": "not_configured"}); got != 1 {
		t.Fatalf("not_configured %v", got)
	}
	r := f.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"baidu","verification_id":"tok"}`), map[string]string{"Authorization": "Bearer " + bearer})
	if r.code != 202 || strings.Contains(r.raw, "success_url") {
		t.Fatalf("registration without keys: %d %s", r.code, r.raw)
	}
	// A public URL with a path prefix keeps it, without doubling slashes.
	g := newFixture(t, func(c *Config) { c.PublicURL = "https://example.com/faceharvest/" })
	r = g.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"baidu","verification_id":"tok"}`), map[string]string{"Authorization": "Bearer " + bearer})
	if !strings.Contains(r.raw, `"success_url":"https://example.com/faceharvest/v1/callbacks/baidu/success?verify_token=tok\u0026sig=`) {
		t.Fatalf("prefixed public URL: %s", r.raw)
	}
}
