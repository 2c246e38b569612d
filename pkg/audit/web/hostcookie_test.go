package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSecureSessionCookieIsHostPrefixed: over https (here --cookie-secure)
// the session cookie is named __Host-…: a browser accepts it only Secure,
// with Path=/ and no Domain, so a sibling host cannot plant or overwrite
// it. A session sent under that name authenticates.
func TestSecureSessionCookieIsHostPrefixed(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.SecureCookie = true })
	resp, _ := f.do(req{method: "POST", path: "/login", form: url.Values{"token": {viewerToken}}, header: map[string]string{"Origin": f.url}})
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	c := resp.Cookies()[0]
	if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || c.Path != "/" || c.Domain != "" {
		t.Fatalf("session cookie %q (Secure %t, Path %q, Domain %q), want __Host- prefixed, Secure, Path=/, no Domain", c.Name, c.Secure, c.Path, c.Domain)
	}
	if r, _ := f.do(req{path: "/v/megvii/biz-m-1", cookie: &http.Cookie{Name: c.Name, Value: c.Value}}); r.StatusCode != 200 {
		t.Fatalf("a view with the session: %d", r.StatusCode)
	}
}
