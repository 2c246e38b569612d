package megvii

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// A vendor (or anything in between) answering a redirect to another host
// must not receive the next request: get_result carries api_key and
// api_secret in its query, which would travel on as the Referer, and a 307
// would resend get_token's form body with the secret in it. The redirect is
// a vendor fault whose error names neither the secret nor the query.
func TestRedirectsAreNotFollowed(t *testing.T) {
	const key, secret = "key-4f1d", "secret-9b7e2c"
	var stolen atomic.Int32
	var referers atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		referers.Store(r.Header.Get("Referer"))
		w.Write([]byte(`{"request_id":"x","status":"OK","biz_info":{"biz_id":"b"},"token":"t","biz_id":"b"}`))
	}))
	t.Cleanup(other.Close)
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/collect", code)
		}))
		c, err := New(Config{BaseURL: vendor.URL, APIKey: config.NewSecret(key), APISecret: config.NewSecret(secret)})
		if err != nil {
			t.Fatal(err)
		}
		for name, call := range map[string]func() error{
			EndpointGetResult: func() error {
				_, err := c.GetResult(context.Background(), "biz-1", GetResultOptions{ReturnImage: ReturnImageAll})
				return err
			},
			EndpointGetResult + " summary": func() error {
				_, _, err := c.GetResultSummary(context.Background(), "biz-1", GetResultOptions{})
				return err
			},
			EndpointGetToken: func() error {
				_, err := c.GetToken(context.Background(), TokenRequest{ReturnURL: "https://app.example/r", NotifyURL: "https://app.example/n", BizNo: "n-1"})
				return err
			},
		} {
			err := call()
			if n := stolen.Swap(0); n != 0 {
				ref, _ := referers.Load().(string)
				t.Errorf("%d %s: the redirect target received %d requests (Referer %q)", code, name, n, ref)
			}
			if vendorerr.ClassOf(err) != vendorerr.VendorFault {
				t.Errorf("%d %s: class %v, want vendor_fault (%v)", code, name, vendorerr.ClassOf(err), err)
			}
			if err != nil {
				for _, s := range []string{secret, key, "api_secret", "biz-1", other.URL} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("%d %s: the error carries %q: %v", code, name, s, err)
					}
				}
			}
		}
		vendor.Close()
	}
}

// net/http's *url.Error prints the whole URL, query included: no transport
// failure of get_result (the secret is in its query) or get_token may let it
// through to the error text, which the harvester logs.
func TestTransportErrorsCarryNoSecret(t *testing.T) {
	const secret = "secret-31c8aa"
	arrived := make(chan struct{}, 4)
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "hang") {
			io.Copy(io.Discard, r.Body) // the server notices a closed connection only once the body is read
			arrived <- struct{}{}
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte(`{"request_id":"x","status":"OK"`)) // cut short
	}))
	t.Cleanup(cut.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, c := range []struct {
		name, base string
		cancel     bool
	}{
		{"connection refused", closed.URL, false},
		{"body cut short", cut.URL, false},
		{"cancelled while waiting", cut.URL + "/hang", true},
	} {
		cl, err := New(Config{BaseURL: c.base, APIKey: config.NewSecret("key-1"), APISecret: config.NewSecret(secret)})
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range []string{EndpointGetResult, EndpointGetToken} {
			ctx, cancel := context.WithCancel(context.Background())
			if c.cancel {
				go func() { <-arrived; cancel() }()
			}
			if ep == EndpointGetResult {
				_, err = cl.GetResult(ctx, "biz-1", GetResultOptions{})
			} else {
				_, err = cl.GetToken(ctx, TokenRequest{BizNo: "n"})
			}
			cancel()
			if err == nil || vendorerr.ClassOf(err) != vendorerr.VendorFault {
				t.Errorf("%s %s: %v, want a vendor fault", c.name, ep, err)
				continue
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "api_secret") || strings.Contains(err.Error(), "biz_id=") {
				t.Errorf("%s %s: the error carries the query: %v", c.name, ep, err)
			}
		}
	}
}
