package baidu

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

const (
	redirAPIKey    = "ak-5c0e1f"
	redirSecretKey = "sk-77a9d3e4"
	redirAccess    = "24.access-token-b81f"
)

// trap is a second loopback server: whatever reaches it has left the vendor.
type trap struct {
	srv  *httptest.Server
	hits atomic.Int32
	seen atomic.Value // the last request's Referer, query and body
}

func newTrap(t *testing.T) *trap {
	tr := &trap{}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		tr.seen.Store("Referer " + r.Header.Get("Referer") + " query " + r.URL.RawQuery + " body " + string(b))
		w.Write([]byte(`{"access_token":"stolen","expires_in":2592000,"success":true,"result":{"verify_token":"x"},"log_id":"1"}`))
	}))
	t.Cleanup(tr.srv.Close)
	return tr
}

// A vendor answering a redirect to another host must not make the client
// follow it: the token grant's credentials, and the access_token every
// faceprint call carries in its URL, would travel on (in the Referer, or
// in the body a 307 resends). The redirect is a vendor fault whose error
// carries no secret.
func TestRedirectsAreNotFollowed(t *testing.T) {
	calls := map[string]func(*Client) error{
		EndpointGetAll: func(c *Client) error { _, err := c.GetAll(context.Background(), "vt-1"); return err },
		EndpointDetail: func(c *Client) error { _, err := c.ResultDetail(context.Background(), "vt-1"); return err },
		EndpointMedia:  func(c *Client) error { _, err := c.MediaQuery(context.Background(), "vt-1"); return err },
		EndpointGenerate: func(c *Client) error {
			_, err := c.GenerateVerifyToken(context.Background(), "plan-1")
			return err
		},
		EndpointSubmit: func(c *Client) error {
			_, err := c.SubmitIDCard(context.Background(), SubmitIDCard{VerifyToken: "vt-1", IDName: "n", IDNo: "110101199003071234"})
			return err
		},
	}
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		for _, redirectToken := range []bool{true, false} {
			tr := newTrap(t)
			vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth/2.0/token" && !redirectToken {
					w.Write([]byte(`{"access_token":"` + redirAccess + `","expires_in":2592000}`))
					return
				}
				http.Redirect(w, r, tr.srv.URL+"/collect", code)
			}))
			c, err := New(Config{BaseURL: vendor.URL, APIKey: config.NewSecret(redirAPIKey), SecretKey: config.NewSecret(redirSecretKey)})
			if err != nil {
				t.Fatal(err)
			}
			for name, call := range calls {
				where := name
				if redirectToken {
					where = EndpointToken + " before " + name
				}
				err := call(c)
				if n := tr.hits.Swap(0); n != 0 {
					seen, _ := tr.seen.Load().(string)
					t.Errorf("%d %s: the redirect target received %d requests (%s)", code, where, n, seen)
				}
				if vendorerr.ClassOf(err) != vendorerr.VendorFault {
					t.Errorf("%d %s: class %v, want vendor_fault (%v)", code, where, vendorerr.ClassOf(err), err)
				}
				if err != nil {
					for _, s := range []string{redirSecretKey, redirAPIKey, redirAccess, "access_token=", "client_secret", tr.srv.URL} {
						if strings.Contains(err.Error(), s) {
							t.Errorf("%d %s: the error carries %q: %v", code, where, s, err)
						}
					}
				}
			}
			vendor.Close()
		}
	}
}

// The token grant sends the credentials in a POST form body, never in the
// URL, where a proxy log, a Referer or an error string would keep them.
func TestTokenCredentialsInTheBody(t *testing.T) {
	var query, form, ctype atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/2.0/token" {
			query.Store(r.URL.RawQuery)
			ctype.Store(r.Header.Get("Content-Type"))
			if r.Method != http.MethodPost || r.ParseForm() != nil {
				w.WriteHeader(400)
				return
			}
			form.Store(r.PostForm.Encode())
			w.Write([]byte(`{"access_token":"` + redirAccess + `","expires_in":2592000}`))
			return
		}
		w.Write([]byte(`{"success":true,"result":{"verify_token":"vt"},"log_id":"9"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, APIKey: config.NewSecret(redirAPIKey), SecretKey: config.NewSecret(redirSecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tokens().Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	q, _ := query.Load().(string)
	f, _ := form.Load().(string)
	ct, _ := ctype.Load().(string)
	if strings.Contains(q, redirSecretKey) || strings.Contains(q, redirAPIKey) {
		t.Errorf("credentials in the URL query: %q", q)
	}
	want := "client_id=" + redirAPIKey + "&client_secret=" + redirSecretKey + "&grant_type=client_credentials"
	if f != want || ct != "application/x-www-form-urlencoded" {
		t.Errorf("form body %q (Content-Type %q), want %q", f, ct, want)
	}
}
