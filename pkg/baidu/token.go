package baidu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// TokenSource mints access_tokens with the client-credentials grant, caches
// them, refreshes them before they expire, and lets concurrent callers share
// one refresh in flight. Minting a new token does not invalidate older ones,
// so a caller holding the previous token is never harmed by a refresh.
type TokenSource struct {
	base          *url.URL
	apiKey        config.Secret
	secretKey     config.Secret
	httpc         *http.Client
	now           clock.Now
	refreshBefore time.Duration

	mu       sync.Mutex
	token    string
	expiry   time.Time
	inflight chan struct{} // closed when the refresh in flight ends
	lastErr  error         // the last refresh's error, for its waiters
	mints    int
}

func newTokenSource(base *url.URL, cfg Config, httpc *http.Client) *TokenSource {
	return &TokenSource{base: base, apiKey: cfg.APIKey, secretKey: cfg.SecretKey, httpc: httpc, now: cfg.Now, refreshBefore: cfg.RefreshBefore}
}

// Token returns a valid access_token, minting one when there is none or the
// current one is within refreshBefore of its expiry.
func (ts *TokenSource) Token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	for {
		now := ts.now()
		if ts.token != "" && now.Before(ts.expiry.Add(-ts.refreshBefore)) {
			t := ts.token
			ts.mu.Unlock()
			return t, nil
		}
		if ts.inflight == nil {
			break
		}
		ch := ts.inflight
		ts.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", vendorerr.Transport(Vendor, EndpointToken, ctx.Err())
		}
		ts.mu.Lock()
		if ts.lastErr != nil {
			err := ts.lastErr
			// A token still inside its lifetime is better than none.
			if ts.token != "" && ts.now().Before(ts.expiry) {
				t := ts.token
				ts.mu.Unlock()
				return t, nil
			}
			ts.mu.Unlock()
			return "", err
		}
	}
	ch := make(chan struct{})
	ts.inflight = ch
	ts.mu.Unlock()

	// The refresh serves every waiter, so it must not die with this caller.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	tok, ttl, err := ts.mint(rctx)
	cancel()

	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.inflight = nil
	ts.lastErr = err
	close(ch)
	if err != nil {
		if ts.token != "" && ts.now().Before(ts.expiry) {
			return ts.token, nil
		}
		return "", err
	}
	ts.mints++
	ts.token, ts.expiry = tok, ts.now().Add(ttl)
	return tok, nil
}

// Invalidate forgets tok if it is the cached token (after answers 110/111),
// so that the next Token call mints a new one.
func (ts *TokenSource) Invalidate(tok string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token == tok {
		ts.token, ts.expiry = "", time.Time{}
	}
}

// Mints returns how many tokens were minted.
func (ts *TokenSource) Mints() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.mints
}

type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

func (ts *TokenSource) mint(ctx context.Context) (string, time.Duration, error) {
	u := *ts.base
	u.Path += "/oauth/2.0/token"
	// The credentials go in the form body (OAuth 2.0's client-credentials
	// grant, which the endpoint also accepts in the query): a URL ends up in
	// proxy logs, Referer headers and error strings.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {ts.apiKey.Reveal()}, "client_secret": {ts.secretKey.Reveal()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, vendorerr.Transport(Vendor, EndpointToken, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body, verr := vendorerr.RoundTrip(ts.httpc, req, Vendor, EndpointToken, 1<<20)
	if verr != nil {
		return "", 0, verr
	}
	var a tokenAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return "", 0, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointToken, Class: vendorerr.VendorFault, HTTPStatus: status, Message: "malformed token answer"}
	}
	if a.Error != "" {
		class := vendorerr.Account
		if status >= 500 {
			class = vendorerr.VendorFault
		}
		return "", 0, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointToken, Class: class, HTTPStatus: status, Code: a.Error, Message: a.ErrorDescription}
	}
	if status != http.StatusOK || a.AccessToken == "" {
		return "", 0, &vendorerr.Error{Vendor: Vendor, Endpoint: EndpointToken, Class: vendorerr.VendorFault, HTTPStatus: status, Message: "token answer lacks access_token"}
	}
	ttl := time.Duration(a.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = 30 * 24 * time.Hour
	}
	return a.AccessToken, ttl, nil
}

// String keeps a TokenSource out of logs.
func (ts *TokenSource) String() string { return fmt.Sprintf("baidu.TokenSource{mints:%d}", ts.Mints()) }
