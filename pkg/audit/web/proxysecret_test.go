package web

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/metricstest"
)

// TestProxyAuthenticatedBySecret: the proxy's user and role headers are
// believed only from its addresses *and* with its shared secret header: a
// pod that reaches the page from a trusted address but lacks the secret
// (or has a wrong one) cannot claim X-Forwarded-Role: identity.
func TestProxyAuthenticatedBySecret(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ProxyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	claim := map[string]string{"X-Forwarded-User": "mallory", "X-Forwarded-Role": "identity"}
	before := metricstest.Sum(t, f.reg, "faceharvest_auditor_auth_failures_total", "reason=untrusted_proxy_header")
	for _, secret := range []string{"", "wrong-secret-0123456789-0123456789-0123"} {
		h := map[string]string{}
		for k, v := range claim {
			h[k] = v
		}
		if secret != "" {
			h[ProxySecretHeader] = secret
		}
		if r, _ := f.do(req{path: "/v/megvii/biz-m-1/identity", header: h}); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("proxy headers with secret %q: %d, want 401", secret, r.StatusCode)
		}
	}
	if got := metricstest.Sum(t, f.reg, "faceharvest_auditor_auth_failures_total", "reason=untrusted_proxy_header"); got != before+2 {
		t.Errorf("untrusted_proxy_header %v, want %v", got, before+2)
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Errorf("%d events", len(es))
	}
	claim[ProxySecretHeader] = proxySecret
	if r, _ := f.do(req{path: "/v/megvii/biz-m-1/identity", header: claim}); r.StatusCode != 200 {
		t.Errorf("the proxy with its secret: %d", r.StatusCode)
	}
}
