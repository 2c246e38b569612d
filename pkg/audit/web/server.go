// Package web is the audit page: a read-only, server-rendered web UI over
// the evidence store for compliance and support staff. Every request but
// the login form is authenticated (a bearer token, a session opened with
// one, or a trusted authenticating proxy's user header), and every view of
// a verification (its page, its unmasked identity, each image or video,
// its evidence document) is written as one audit event, acknowledged by the
// audit topic, before anything is shown.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/authlimit"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Recorder records a view; nothing is shown unless it returned nil
// (an *audit.Log).
type Recorder interface {
	Record(ctx context.Context, e contract.AuditEvent) error
}

// Config configures the page. Finder, Recorder, Tokens and SessionKeys are
// required.
type Config struct {
	Finder   audit.Finder
	Recorder Recorder
	Tokens   *Tokens
	// SessionKeys sign login sessions (the first signs, any verifies), each
	// at least MinSessionKeyLen bytes.
	SessionKeys [][]byte
	// SessionTTL is how long a login lasts (8 h when 0).
	SessionTTL time.Duration
	// SecureCookie marks the session cookie Secure (only sent over https).
	// It is also set whenever the request came over TLS.
	SecureCookie bool
	// PublicURL, when set, is the page's external origin
	// (https://audit.example.com): login and logout requests must come from
	// it. Empty: from the request's own Host.
	PublicURL string
	// ProxyUserHeader names the header an authenticating proxy puts the
	// user's name in (e.g. X-Forwarded-User); it is believed only from
	// ProxyCIDRs. ProxyRoleHeader names the header holding the user's role
	// (viewer or identity; viewer when absent or unknown).
	ProxyUserHeader string
	ProxyRoleHeader string
	ProxyCIDRs      []netip.Prefix
	// ProxySecrets authenticate the proxy beyond its address: its requests
	// carry one of them in ProxySecretHeader (any verifies, for rotation),
	// each at least MinSessionKeyLen bytes; required with ProxyUserHeader.
	// A pod that can reach the page from a trusted address but does not
	// hold the secret cannot claim a user or a role.
	ProxySecrets [][]byte
	// MaxSearchResults bounds a biz_no search's answer (50 when 0).
	MaxSearchResults int
	// FailedTokenBurst failed token checks (a wrong bearer token, a wrong
	// token typed into the login form) are allowed per client address,
	// refilled one per FailedTokenEvery; beyond, 429 without the token
	// being checked (10 and 6 s when 0).
	FailedTokenBurst int
	FailedTokenEvery time.Duration
	// Bundles, when set, builds evidence bundles: the record page offers
	// its verification's bundle to the identity role. BundleDir is where
	// a bundle is built before it is sent (os.TempDir() when "").
	Bundles   *audit.Exporter
	BundleDir string
	Now       clock.Now
	// Metrics (NewMetrics) or, when nil, Registry to register them on.
	Metrics  *Metrics
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Routes.
const (
	RouteLogin  = "/login"
	RouteLogout = "/logout"
	RouteSearch = "/search"
)

// Server serves the audit page.
type Server struct {
	cfg      Config
	sessions sessions
	now      clock.Now
	log      *slog.Logger
	m        *Metrics
	pages    *pages
	origin   string
	failures *authlimit.Failures
}

// maxFailingAddrs bounds the addresses whose failed token checks are
// tracked.
const maxFailingAddrs = 10000

// New returns the page's server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Finder == nil || cfg.Recorder == nil || cfg.Tokens == nil:
		return nil, errors.New("audit page: a finder, a recorder and tokens are required")
	case len(cfg.SessionKeys) == 0:
		return nil, errors.New("audit page: no session key")
	case cfg.ProxyUserHeader != "" && len(cfg.ProxyCIDRs) == 0:
		return nil, errors.New("audit page: a trusted proxy header needs the proxies' addresses (CIDRs)")
	case cfg.ProxyUserHeader != "" && len(cfg.ProxySecrets) == 0:
		return nil, errors.New("audit page: a trusted proxy header needs the proxy's shared secret")
	}
	for _, k := range cfg.ProxySecrets {
		if len(k) < MinSessionKeyLen {
			return nil, fmt.Errorf("audit page: proxy secrets must be at least %d bytes", MinSessionKeyLen)
		}
	}
	for _, k := range cfg.SessionKeys {
		if len(k) < MinSessionKeyLen {
			return nil, fmt.Errorf("audit page: session keys must be at least %d bytes", MinSessionKeyLen)
		}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.MaxSearchResults <= 0 {
		cfg.MaxSearchResults = 50
	}
	if cfg.FailedTokenBurst <= 0 {
		cfg.FailedTokenBurst = 10
	}
	if cfg.FailedTokenEvery <= 0 {
		cfg.FailedTokenEvery = 6 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		if cfg.Registry == nil {
			cfg.Registry = prometheus.NewRegistry()
		}
		cfg.Metrics = NewMetrics(cfg.Registry)
	}
	s := &Server{cfg: cfg, sessions: sessions{keys: cfg.SessionKeys, ttl: cfg.SessionTTL}, now: cfg.Now, log: cfg.Logger, m: cfg.Metrics,
		failures: authlimit.New(cfg.Now, cfg.FailedTokenBurst, cfg.FailedTokenEvery, maxFailingAddrs)}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("audit page: public URL %q: want http(s)://host[:port]", cfg.PublicURL)
		}
		s.origin = u.Scheme + "://" + u.Host
	}
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	return s, nil
}

// Handler returns the page's routes, each behind the security headers and
// the request metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+RouteLogin, s.loginForm)
	mux.HandleFunc("POST "+RouteLogin, s.login)
	mux.HandleFunc("POST "+RouteLogout, s.logout)
	mux.Handle("GET /{$}", s.authed("home", s.home))
	mux.Handle("GET "+RouteSearch, s.authed("search", getOnly(s.search)))
	mux.Handle("GET /v/{vendor}/{id}", s.authed("verification", getOnly(s.verification)))
	mux.Handle("GET /v/{vendor}/{id}/identity", s.authed("identity", getOnly(s.identity)))
	mux.Handle("GET /v/{vendor}/{id}/media/{n}", s.authed("media", getOnly(s.media)))
	mux.Handle("GET /v/{vendor}/{id}/evidence", s.authed("evidence", getOnly(s.evidence)))
	mux.Handle("POST /v/{vendor}/{id}/bundle", s.authed("bundle", s.bundle))
	mux.Handle("/", s.authed("other", func(w http.ResponseWriter, r *http.Request, _ Principal) {
		s.fail(w, r, http.StatusNotFound, "No such page.")
	}))
	return s.wrap(mux)
}

// HTTPServer returns the http.Server to serve Handler with.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		MaxHeaderBytes:    32 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      10 * time.Minute, // a video streams for a while
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// The Content-Security-Policy of every answer: nothing but this origin's
// own images and media, the page's one stylesheet by its hash, no script
// at all, no framing, forms only to this origin.
func (s *Server) csp() string {
	return "default-src 'none'; img-src 'self'; media-src 'self'; style-src '" + s.pages.styleHash + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

type ctxKey int

const requestIDKey ctxKey = 0

// principalKey keeps the authenticated principal in a request's context,
// for the error page (fail) to show who is logged in without
// authenticating again.
const principalKey ctxKey = 1

// wrap sets the security headers and the request id, and counts answers.
func (s *Server) wrap(next http.Handler) http.Handler {
	csp := s.csp()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		id := requestID(r.Header.Get("X-Request-Id"))
		h.Set("X-Request-Id", id)
		rw := &recorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
		route := rw.route
		if route == "" {
			route = routeOf(r)
		}
		s.m.request(route, rw.code)
	})
}

// routeOf names the unauthenticated routes for the metrics.
func routeOf(r *http.Request) string {
	switch r.URL.Path {
	case RouteLogin:
		return "login"
	case RouteLogout:
		return "logout"
	}
	return "other"
}

// requestID keeps a proxy's request id when it looks like one, or makes
// one.
func requestID(in string) string {
	if n := len(in); n > 0 && n <= 64 && strings.Trim(in, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") == "" {
		return in
	}
	return audit.NewEventID()
}

type recorder struct {
	http.ResponseWriter
	code  int
	route string
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func setRoute(w http.ResponseWriter, route string) {
	if rw, ok := w.(*recorder); ok {
		rw.route = route
	}
}

// getOnly refuses HEAD (which a GET route also matches) on the views: a
// view is recorded as shown, and a HEAD shows nothing.
func getOnly(h func(http.ResponseWriter, *http.Request, Principal)) func(http.ResponseWriter, *http.Request, Principal) {
	return func(w http.ResponseWriter, r *http.Request, p Principal) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		h(w, r, p)
	}
}

// authed authenticates a request before h; a request that is not gets 401
// (with the login form, for browsers) and causes nothing else.
func (s *Server) authed(route string, h func(http.ResponseWriter, *http.Request, Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRoute(w, route)
		if r.Header.Get("Authorization") != "" && s.tooManyFailures(w, r) {
			return
		}
		if crossSite(r) {
			// A link, image or form on another site would make the
			// victim's browser (its session cookie, or its SSO proxy's
			// headers) record a view under the victim's name.
			s.m.authFailure(reasonCrossSite)
			s.render(w, r, http.StatusForbidden, "error", errorData{Code: http.StatusForbidden, Status: http.StatusText(http.StatusForbidden),
				Message: "This page cannot be opened from another site: open it from the audit page itself or type its address."}, Principal{})
			return
		}
		p, reason := s.authenticate(r)
		if reason == reasonBadToken {
			s.failures.Fail(remoteAddr(r))
		}
		if reason != "" {
			s.m.authFailure(reason)
			w.Header().Set("WWW-Authenticate", `Bearer realm="faceharvest audit"`)
			if reason == reasonExpired || reason == reasonBadSession {
				s.clearCookie(w, r)
			}
			s.render(w, r, http.StatusUnauthorized, "login", loginData{Next: nextPath(r.URL.RequestURI()), Message: reasonMessage(reason)}, Principal{})
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)), p)
	})
}

// Reasons of authentication failures (the metric's label values).
const (
	reasonMissing        = "missing"
	reasonBadToken       = "invalid_token"
	reasonBadSession     = "invalid_session"
	reasonExpired        = "expired_session"
	reasonRevoked        = "revoked_session"
	reasonUntrustedProxy = "untrusted_proxy_header"
	reasonRepeatedProxy  = "repeated_proxy_header"
	reasonRateLimited    = "too_many_failures"
	reasonForbidden      = "forbidden_role"
	reasonBadOrigin      = "bad_origin"
	reasonCrossSite      = "cross_site"
)

var authReasons = []string{reasonMissing, reasonBadToken, reasonBadSession, reasonExpired, reasonRevoked, reasonUntrustedProxy, reasonRepeatedProxy, reasonForbidden, reasonBadOrigin, reasonRateLimited, reasonCrossSite}

func reasonMessage(reason string) string {
	switch reason {
	case reasonBadToken:
		return "That token is not valid."
	case reasonExpired:
		return "Your session has expired: log in again."
	case reasonRevoked, reasonBadSession:
		return "Your session is no longer valid: log in again."
	}
	return ""
}

// authenticate returns the request's principal, or why it has none. A
// trusted proxy's user header wins; then an Authorization header (which,
// when present, must be valid); then the session cookie.
func (s *Server) authenticate(r *http.Request) (Principal, string) {
	proxied := s.cfg.ProxyUserHeader != "" && r.Header.Get(s.cfg.ProxyUserHeader) != ""
	if proxied && s.fromProxy(r) {
		// A proxy that appends its headers to the client's instead of
		// replacing them would let the client's come first: a user or role
		// header given more than once is believed in neither copy.
		if len(r.Header.Values(s.cfg.ProxyUserHeader)) != 1 || (s.cfg.ProxyRoleHeader != "" && len(r.Header.Values(s.cfg.ProxyRoleHeader)) > 1) {
			return Principal{}, reasonRepeatedProxy
		}
		role := contract.RoleViewer
		if s.cfg.ProxyRoleHeader != "" && strings.TrimSpace(r.Header.Get(s.cfg.ProxyRoleHeader)) == contract.RoleIdentity {
			role = contract.RoleIdentity
		}
		name := r.Header.Get(s.cfg.ProxyUserHeader)
		if len(name) > 200 {
			name = name[:200]
		}
		return Principal{Name: name, Role: role, Method: "proxy"}, ""
	}
	if a := r.Header.Get("Authorization"); a != "" {
		tok, ok := strings.CutPrefix(a, "Bearer ")
		if !ok {
			return Principal{}, reasonBadToken
		}
		p, ok := s.cfg.Tokens.Lookup(strings.TrimSpace(tok))
		if !ok {
			return Principal{}, reasonBadToken
		}
		return p, ""
	}
	if c, err := r.Cookie(s.cookieName(r)); err == nil && c.Value != "" {
		fp, err := s.sessions.verify(c.Value, s.now())
		switch {
		case errors.Is(err, errSessionExpired):
			return Principal{}, reasonExpired
		case err != nil:
			return Principal{}, reasonBadSession
		}
		p, ok := s.cfg.Tokens.byFingerprint(fp)
		if !ok {
			return Principal{}, reasonRevoked
		}
		return p, ""
	}
	if proxied {
		return Principal{}, reasonUntrustedProxy
	}
	return Principal{}, reasonMissing
}

// ProxySecretHeader carries the trusted proxy's shared secret
// (Config.ProxySecrets).
const ProxySecretHeader = "X-Faceharvest-Proxy-Secret"

// fromProxy reports whether the request comes from a trusted proxy: from
// one of its addresses, with one of its secrets (compared as SHA-256
// hashes in constant time, every secret tried).
func (s *Server) fromProxy(r *http.Request) bool {
	vals := r.Header.Values(ProxySecretHeader)
	if len(vals) != 1 {
		return false
	}
	got := sha256.Sum256([]byte(vals[0]))
	ok := 0
	for _, k := range s.cfg.ProxySecrets {
		want := sha256.Sum256(k)
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return ok == 1 && s.fromProxyAddr(r)
}

// fromProxyAddr reports whether the connection comes from a trusted
// proxy's address.
func (s *Server) fromProxyAddr(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.ProxyCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// crossSite reports whether a browser says the request comes from another
// site (Sec-Fetch-Site, which no page can set: cross-site, or same-site
// for a sibling host that may not be ours). A typed address or bookmark
// (none), the page's own links (same-origin) and clients that send no
// such header (not browsers: they carry no victim's cookie) pass.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// sameOrigin is the CSRF check of login and logout (the only requests that
// change anything): the browser's Origin must be the page's own. Under
// Referrer-Policy: no-referrer a browser sends "Origin: null" with a form
// it posts, so then the browser's own Sec-Fetch-Site (which no page can set)
// must say same-origin. A request without either header is not a browser's
// and carries no cookie of a victim's; it passes.
func (s *Server) sameOrigin(r *http.Request) bool {
	o, sfs := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")
	switch {
	case sfs != "" && sfs != "same-origin":
		return false
	case o == "null":
		return sfs == "same-origin"
	case o == "":
		return true
	}
	want := s.origin
	if want == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		want = scheme + "://" + r.Host
	}
	return o == want
}

func (s *Server) secure(r *http.Request) bool {
	return s.cfg.SecureCookie || r.TLS != nil || strings.HasPrefix(s.origin, "https:")
}

// cookieName is the session cookie's name: __Host- prefixed when it is
// Secure.
func (s *Server) cookieName(r *http.Request) string {
	if s.secure(r) {
		return SecureSessionCookie
	}
	return SessionCookie
}

func (s *Server) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
}

// nextPath keeps a post-login destination only when it is a path on this
// site. Browsers drop tabs and newlines from a Location and read a
// backslash as a slash, so "/\t/evil.example" or "/a/../\\evil.example"
// would leave the site: a path holding either is refused whole.
func nextPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, RouteLogin) || len(p) > 1000 ||
		strings.ContainsFunc(p, func(c rune) bool { return c < 0x20 || c == 0x7f || c == '\\' }) {
		return "/"
	}
	return p
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "login", loginData{Next: nextPath(r.URL.Query().Get("next"))}, Principal{})
}

// login checks a bearer token typed into the form and opens a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.m.authFailure(reasonBadOrigin)
		s.fail(w, r, http.StatusForbidden, "This form must be sent from the audit page itself.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		s.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	next := nextPath(r.PostForm.Get("next"))
	if s.tooManyFailures(w, r) {
		return
	}
	p, ok := s.cfg.Tokens.Lookup(strings.TrimSpace(r.PostForm.Get("token")))
	if !ok {
		s.failures.Fail(remoteAddr(r))
		s.m.authFailure(reasonBadToken)
		s.render(w, r, http.StatusUnauthorized, "login", loginData{Next: next, Message: reasonMessage(reasonBadToken)}, Principal{})
		return
	}
	v, exp := s.sessions.issue(p.fingerprint, s.now())
	http.SetCookie(w, &http.Cookie{Name: s.cookieName(r), Value: v, Path: "/", Expires: exp, MaxAge: int(s.cfg.SessionTTL / time.Second),
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
	s.log.Info("login", "viewer", p.Name, "role", p.Role, "request_id", reqID(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// tooManyFailures answers 429 when the request's address has used up its
// failed token checks; the token it carries is then not checked at all.
func (s *Server) tooManyFailures(w http.ResponseWriter, r *http.Request) bool {
	wait := s.failures.Blocked(remoteAddr(r))
	if wait <= 0 {
		return false
	}
	s.m.authFailure(reasonRateLimited)
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	s.render(w, r, http.StatusTooManyRequests, "error", errorData{Code: http.StatusTooManyRequests, Status: http.StatusText(http.StatusTooManyRequests),
		Message: fmt.Sprintf("Too many wrong tokens from your address: try again in %d seconds.", secs)}, Principal{})
	return true
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.sameOrigin(r) {
		s.m.authFailure(reasonBadOrigin)
		s.fail(w, r, http.StatusForbidden, "This form must be sent from the audit page itself.")
		return
	}
	s.clearCookie(w, r)
	http.Redirect(w, r, RouteLogin, http.StatusSeeOther)
}

func reqID(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey).(string)
	return id
}

func remoteAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// event starts the audit event of a view by p.
func event(r *http.Request, p Principal, action string) contract.AuditEvent {
	return contract.AuditEvent{Viewer: p.Name, Role: p.Role, Action: action, RequestID: reqID(r), RemoteAddr: remoteAddr(r)}
}

// record writes the view's audit event; false (and a 503 answered) when it
// could not be written: then nothing is shown.
func (s *Server) record(w http.ResponseWriter, r *http.Request, e contract.AuditEvent) bool {
	if err := s.cfg.Recorder.Record(r.Context(), e); err != nil {
		s.log.Error("audit event not written; nothing shown", "viewer", e.Viewer, "action", e.Action, "vendor", string(e.Vendor), "verification_id", e.VerificationID, "request_id", e.RequestID, "error", err.Error())
		w.Header().Set("Retry-After", "5")
		s.fail(w, r, http.StatusServiceUnavailable, "This view could not be recorded in the audit log, so it is not shown. Try again shortly.")
		return false
	}
	return true
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, p Principal) {
	s.render(w, r, http.StatusOK, "search", searchData{}, p)
}

// search finds verifications by "<vendor>:<id>" (answered with the
// verification's page), or by a bare id or biz_no (a list of what matches:
// the biz_no's verifications and any vendor's verification of that id). A
// list is a view: it is audited as one search event naming what it listed.
func (s *Server) search(w http.ResponseWriter, r *http.Request, p Principal) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		s.render(w, r, http.StatusOK, "search", searchData{}, p)
		return
	}
	if len(q) > 256 {
		s.fail(w, r, http.StatusBadRequest, "That search is too long.")
		return
	}
	if v, id, err := contract.SplitKey(q); err == nil {
		http.Redirect(w, r, verificationPath(v, id), http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	found, total, err := s.cfg.Finder.ByBizNo(ctx, q, s.cfg.MaxSearchResults)
	if errors.Is(err, audit.ErrMissing) {
		s.missing(r, err)
		s.fail(w, r, http.StatusNotFound, "The store no longer holds the record of a verification this search finds.")
		return
	}
	if err != nil {
		s.storeFailed(w, r, err)
		return
	}
	seen := map[string]bool{}
	for _, v := range found {
		seen[contract.Key(v.Record.Vendor, v.Record.VerificationID)] = true
	}
	for _, vendor := range []contract.Vendor{contract.Megvii, contract.Baidu} {
		v, err := s.cfg.Finder.Get(ctx, vendor, q)
		switch {
		case errors.Is(err, audit.ErrMissing):
			s.missing(r, err)
			s.fail(w, r, http.StatusNotFound, "The store no longer holds the record of "+contract.Key(vendor, q)+".")
			return
		case errors.Is(err, audit.ErrNotFound):
		case err != nil:
			s.storeFailed(w, r, err)
			return
		case !seen[contract.Key(vendor, q)] && v.Record.BizNo != q: // one of the biz_no's is counted already
			found = append(found, v)
			total++
		}
	}
	d := searchData{Query: q, Total: total}
	if len(found) > s.cfg.MaxSearchResults {
		found = found[:s.cfg.MaxSearchResults]
	}
	// The query is recorded when it is a biz_no the store holds; anything
	// else (an id, which the listed keys name, or text that matched
	// nothing, such as an ID number pasted into the box) only by its
	// SHA-256: the audit topic gets no text the store did not name.
	e := event(r, p, contract.AuditSearch)
	for _, v := range found {
		if v.Record.BizNo == q {
			e.BizNo = q
			break
		}
	}
	if e.BizNo == "" {
		sum := sha256.Sum256([]byte(q))
		e.QuerySHA256 = hex.EncodeToString(sum[:])
	}
	for _, v := range found {
		d.Results = append(d.Results, summarize(v.Record))
		e.Verifications = append(e.Verifications, contract.Key(v.Record.Vendor, v.Record.VerificationID))
	}
	s.renderAudited(w, r, http.StatusOK, "search", d, p, e)
}

// verificationView is the record page's data, with the bundle's download
// when the page offers it to p.
func (s *Server) verificationView(r contract.Record, unmasked *contract.Identity, p Principal) verificationView {
	v := newVerificationView(r, unmasked, p)
	if s.offersBundle(p) {
		v.BundlePath = bundlePath(r.Vendor, r.VerificationID)
	}
	return v
}

func verificationPath(v contract.Vendor, id string) string {
	return "/v/" + string(v) + "/" + url.PathEscape(id)
}

// find reads the verification the route names; false (and answered) when
// there is none or the store failed.
func (s *Server) find(w http.ResponseWriter, r *http.Request) (audit.Verification, bool) {
	v, err := contract.ParseVendor(r.PathValue("vendor"))
	id := r.PathValue("id")
	if err != nil || id == "" || len(id) > 256 {
		s.fail(w, r, http.StatusNotFound, "No such verification.")
		return audit.Verification{}, false
	}
	ver, err := s.cfg.Finder.Get(r.Context(), v, id)
	switch {
	case errors.Is(err, audit.ErrMissing):
		s.missing(r, err)
		s.fail(w, r, http.StatusNotFound, "The store no longer holds the record of "+contract.Key(v, id)+".")
		return audit.Verification{}, false
	case errors.Is(err, audit.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "The store holds no verification "+contract.Key(v, id)+".")
		return audit.Verification{}, false
	case err != nil:
		s.storeFailed(w, r, err)
		return audit.Verification{}, false
	}
	return ver, true
}

// missing logs an object the index names that the store does not hold:
// evidence that should be kept is gone (law 9), which an operator must
// look into; the view is answered 404.
func (s *Server) missing(r *http.Request, err error) {
	s.log.Error("an indexed object is missing from the evidence store", "request_id", reqID(r), "error", err.Error())
}

func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("evidence store", "request_id", reqID(r), "error", err.Error())
	w.Header().Set("Retry-After", "5")
	s.fail(w, r, http.StatusServiceUnavailable, "The evidence store did not answer. Try again shortly.")
}

func (s *Server) verification(w http.ResponseWriter, r *http.Request, p Principal) {
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	e := event(r, p, contract.AuditRecord)
	e.Vendor, e.VerificationID, e.BizNo, e.Record = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, true
	s.renderAudited(w, r, http.StatusOK, "verification", s.verificationView(ver.Record, nil, p), p, e)
}

// identity is the verification's page with the identity unmasked, read
// from its evidence document: for the identity role only.
func (s *Server) identity(w http.ResponseWriter, r *http.Request, p Principal) {
	if !p.CanSeeIdentity() {
		s.m.authFailure(reasonForbidden)
		s.fail(w, r, http.StatusForbidden, "Your role does not allow seeing unmasked identities.")
		return
	}
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	id, err := s.cfg.Finder.Identity(r.Context(), ver)
	if err != nil {
		if errors.Is(err, audit.ErrMissing) {
			s.missing(r, err)
			s.fail(w, r, http.StatusNotFound, "The store no longer holds the evidence document.")
			return
		}
		if errors.Is(err, audit.ErrNotFound) || errors.Is(err, audit.ErrNoIdentity) {
			s.fail(w, r, http.StatusNotFound, "The evidence document holds no identity.")
			return
		}
		s.storeFailed(w, r, err)
		return
	}
	e := event(r, p, contract.AuditIdentity)
	e.Vendor, e.VerificationID, e.BizNo, e.Record, e.IdentityUnmasked = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, true, true
	e.ObjectKey = ver.Index.Evidence.Key
	s.renderAudited(w, r, http.StatusOK, "verification", s.verificationView(ver.Record, &id, p), p, e)
}

// media streams the n-th media object the verification's record lists
// (the record's own, then each attempt's), from the store through this
// server: the browser never gets a link to the store. An ID-card image
// (contract.IdentityMedia) is identity data: for the identity role only,
// recorded as identity_unmasked.
func (s *Server) media(w http.ResponseWriter, r *http.Request, p Principal) {
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	items := mediaOf(ver.Record)
	if err != nil || n < 0 || n >= len(items) || items[n].Status != contract.MediaStored || items[n].Key == "" {
		s.fail(w, r, http.StatusNotFound, "This verification has no such stored media object.")
		return
	}
	m := items[n]
	identity := contract.IdentityMedia(m.Kind)
	if identity && !p.CanSeeIdentity() {
		s.m.authFailure(reasonForbidden)
		s.fail(w, r, http.StatusForbidden, "Your role does not allow seeing ID-card images: they show the unmasked identity.")
		return
	}
	e := event(r, p, contract.AuditMedia)
	e.Vendor, e.VerificationID, e.BizNo, e.ObjectKey, e.MediaKind = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, m.Key, m.Kind
	e.IdentityUnmasked = identity
	ct := m.ContentType
	kind := "image"
	switch {
	case strings.HasPrefix(ct, "image/"):
	case strings.HasPrefix(ct, "video/"):
		kind = "video"
	default:
		ct, kind = "application/octet-stream", "other"
	}
	s.stream(w, r, ver, m.Key, ct, kind, "", e)
}

// evidence streams the evidence document (which holds the unmasked
// identity): for the identity role only.
func (s *Server) evidence(w http.ResponseWriter, r *http.Request, p Principal) {
	if !p.CanSeeIdentity() {
		s.m.authFailure(reasonForbidden)
		s.fail(w, r, http.StatusForbidden, "Your role does not allow reading evidence documents.")
		return
	}
	ver, ok := s.find(w, r)
	if !ok {
		return
	}
	key := ver.Index.Evidence.Key
	if key == "" && ver.Record.Evidence != nil {
		key = ver.Record.Evidence.Key
	}
	if key == "" {
		s.fail(w, r, http.StatusNotFound, "This verification has no evidence document.")
		return
	}
	e := event(r, p, contract.AuditEvidence)
	e.Vendor, e.VerificationID, e.BizNo, e.ObjectKey, e.IdentityUnmasked = ver.Record.Vendor, ver.Record.VerificationID, ver.Record.BizNo, key, true
	s.stream(w, r, ver, key, "application/json", "evidence", `attachment; filename="`+attachmentName(ver.Record.Vendor, ver.Record.VerificationID)+`-evidence.json"`, e)
}

// attachmentName is a verification's name for a download: letters,
// digits, '-', '_' and '.' of "<vendor>-<id>", anything else as '_', at
// most 100 bytes (the id is the vendor's: it could hold quotes, control
// characters or text that would end or extend the header).
func attachmentName(v contract.Vendor, id string) string {
	b := []byte(string(v) + "-" + id)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 100 {
		b = b[:100]
	}
	return string(b)
}

// verifyAhead is how much of an object is read before anything is recorded
// or sent: an object that fits (every image) is checked against its
// recorded SHA-256 whole, first.
const verifyAhead = 1 << 20

// stream opens key, records e, then copies the object to w. Nothing is
// sent before the event is written, and no object is sent whole unless it
// matches its recorded SHA-256: one that fits in verifyAhead is checked
// before its event; a larger one is sent holding back the last bytes read
// until the end proves it, and cut short (the browser sees a failed
// download) when it does not.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, ver audit.Verification, key, contentType, kind, disposition string, e contract.AuditEvent) {
	rc, attrs, err := s.cfg.Finder.Open(r.Context(), ver, key)
	switch {
	case errors.Is(err, audit.ErrMissing):
		s.missing(r, err)
		s.fail(w, r, http.StatusNotFound, "The store no longer holds this object.")
		return
	case errors.Is(err, audit.ErrNotFound):
		s.fail(w, r, http.StatusNotFound, "The store does not hold this object.")
		return
	case err != nil:
		s.storeFailed(w, r, err)
		return
	}
	defer rc.Close()
	head := make([]byte, verifyAhead)
	n, err := io.ReadFull(rc, head)
	whole := errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	switch {
	case errors.Is(err, audit.ErrMismatch):
		s.tampered(w, r, key)
		return
	case err != nil && !whole:
		s.storeFailed(w, r, err)
		return
	}
	if !s.record(w, r, e) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	if disposition != "" {
		h.Set("Content-Disposition", disposition)
	}
	if whole {
		h.Set("Content-Length", strconv.Itoa(n))
	} else if attrs.Size > 0 {
		h.Set("Content-Length", strconv.FormatInt(attrs.Size, 10))
	}
	w.WriteHeader(http.StatusOK)
	sent, err := s.sendHeld(w, rc, head[:n], whole)
	s.m.mediaBytes.WithLabelValues(kind).Add(float64(sent))
	switch {
	case errors.Is(err, audit.ErrMismatch):
		s.log.Error("a stored object does not match its recorded SHA-256; its answer was cut short", "key", key, "bytes", sent, "request_id", reqID(r))
		panic(http.ErrAbortHandler)
	case err != nil:
		s.log.Warn("streaming an object ended early", "key", key, "bytes", sent, "request_id", reqID(r), "error", err.Error())
	}
}

// sendHeld writes held, then the rest of rc, always keeping the last bytes
// read back until the next read succeeds: the object's end is sent only
// once rc reached it without an error.
func (s *Server) sendHeld(w io.Writer, rc io.Reader, held []byte, whole bool) (int64, error) {
	var sent int64
	if !whole {
		next := make([]byte, 32<<10)
		for {
			k, err := rc.Read(next)
			if k > 0 {
				m, werr := w.Write(held)
				sent += int64(m)
				if werr != nil {
					return sent, werr
				}
				held, next = next[:k], held[:cap(held)]
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return sent, err
			}
		}
	}
	m, err := w.Write(held)
	return sent + int64(m), err
}

// tampered answers a stored object that does not match its recorded
// SHA-256: nothing of it is shown, and the operators are told.
func (s *Server) tampered(w http.ResponseWriter, r *http.Request, key string) {
	s.log.Error("a stored object does not match its recorded SHA-256; not shown", "key", key, "request_id", reqID(r))
	s.fail(w, r, http.StatusInternalServerError, "This object in the store does not match the SHA-256 its record names, so it is not shown. Tell the operators.")
}

// renderAudited renders a page, records its view, then sends it: a page
// that fails to render is not recorded as shown, and one whose event could
// not be written is not shown.
func (s *Server) renderAudited(w http.ResponseWriter, r *http.Request, code int, page string, data any, p Principal, e contract.AuditEvent) {
	var buf bytes.Buffer
	if err := s.pages.execute(&buf, page, s.frame(r, p, data)); err != nil {
		s.log.Error("rendering a page", "page", page, "request_id", reqID(r), "error", err.Error())
		s.fail(w, r, http.StatusInternalServerError, "The page could not be rendered.")
		return
	}
	if !s.record(w, r, e) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// render sends a page that shows no personal data.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, page string, data any, p Principal) {
	var buf bytes.Buffer
	if err := s.pages.execute(&buf, page, s.frame(r, p, data)); err != nil {
		s.log.Error("rendering a page", "page", page, "request_id", reqID(r), "error", err.Error())
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	p, _ := r.Context().Value(principalKey).(Principal)
	s.render(w, r, code, "error", errorData{Code: code, Status: http.StatusText(code), Message: msg}, p)
}

type frame struct {
	Viewer    Principal
	RequestID string
	Data      any
}

func (s *Server) frame(r *http.Request, p Principal, data any) frame {
	return frame{Viewer: p, RequestID: reqID(r), Data: data}
}
