package vendorerr

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// NoRedirects leaves the given client as it was and stops at the first
// redirect, which RoundTrip classifies without its Location or body.
func TestNoRedirects(t *testing.T) {
	var followed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/next?token=t0ps3cret", http.StatusMovedPermanently)
	}))
	defer srv.Close()
	base := &http.Client{Timeout: 7 * time.Minute}
	c := NoRedirects(base)
	if base.CheckRedirect != nil || c.Timeout != base.Timeout || c == base {
		t.Fatal("NoRedirects changed its argument or lost its settings")
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/start?secret=s3", nil)
	status, body, err := RoundTrip(c, req, "v", "e", 1<<10)
	if followed.Load() != 0 || status != http.StatusMovedPermanently || body != nil || err == nil || err.Class != VendorFault {
		t.Fatalf("followed %d, status %d, body %q, err %v", followed.Load(), status, body, err)
	}
	if s := err.Error(); strings.Contains(s, "t0ps3cret") || strings.Contains(s, "s3") || strings.Contains(s, "/next") {
		t.Fatalf("the error carries the redirect or the query: %s", s)
	}
}
