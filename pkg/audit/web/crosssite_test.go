package web

import (
	"net/http"
	"testing"
)

// TestCrossSiteViewsRefused: a view a browser requests from another site
// (a link or an image there; Sec-Fetch-Site cross-site or same-site),
// authenticated by the victim's session or SSO proxy, is refused 403 and
// records nothing; a typed address (none) and the page's own links
// (same-origin) are views.
func TestCrossSiteViewsRefused(t *testing.T) {
	f := newFixture(t, nil)
	_ = f.eventsUpToSentinel()
	for _, site := range []string{"cross-site", "same-site"} {
		for _, path := range []string{"/v/megvii/biz-m-1", "/v/megvii/biz-m-1/identity", "/v/megvii/biz-m-1/media/2", "/search?q=loan-42"} {
			h := map[string]string{"Sec-Fetch-Site": site, "Authorization": "Bearer " + identityToken}
			if r, _ := f.do(req{path: path, header: h}); r.StatusCode != http.StatusForbidden {
				t.Errorf("%s from %s: %d, want 403", path, site, r.StatusCode)
			}
		}
	}
	if es := sinceLastSentinel(f.eventsUpToSentinel()); len(es) != 0 {
		t.Errorf("cross-site requests wrote %d events", len(es))
	}
	for _, site := range []string{"none", "same-origin", ""} {
		h := map[string]string{"Authorization": "Bearer " + viewerToken}
		if site != "" {
			h["Sec-Fetch-Site"] = site
		}
		if r, _ := f.do(req{path: "/v/megvii/biz-m-1", header: h}); r.StatusCode != 200 {
			t.Errorf("a view with Sec-Fetch-Site %q: %d, want 200", site, r.StatusCode)
		}
	}
}
