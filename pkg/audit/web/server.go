// Package web is the audit page: a read-only, server-rendered web UI over
// the evidence store for compliance and support staff. Every request but
// the login form is authenticated (a bearer token, a session opened with
// one, or a trusted authenticating proxy's user header), and every view of
// a verification (its page, its unmasked identity, each image or video,
// its evidence document) is written as one audit event, acknowledged by the
// audit topic, before anything is shown.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
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

// Config configures the page: start from DefaultConfig, set Finder,
// Recorder, Tokens and SessionKeys (required), and Metrics or Registry.
// New refuses a Config that does not Validate; nothing is defaulted there.
type Config struct {
	Finder   audit.Finder
	Recorder Recorder
	Tokens   *Tokens
	// SessionKeys sign login sessions (the first signs, any verifies), each
	// at least MinSessionKeyLen bytes.
	SessionKeys [][]byte
	// SessionTTL is how long a login lasts.
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
	// MaxSearchResults bounds a biz_no search's answer.
	MaxSearchResults int
	// FailedTokenBurst failed token checks (a wrong bearer token, a wrong
	// token typed into the login form) are allowed per client address,
	// refilled one per FailedTokenEvery; beyond, 429 without the token
	// being checked.
	FailedTokenBurst int
	FailedTokenEvery time.Duration
	// Bundles, when set, builds evidence bundles: the record page offers
	// its verification's bundle to the identity role. BundleDir is where
	// a bundle is built before it is sent (os.TempDir() when "").
	Bundles   *audit.Exporter
	BundleDir string
	Now       clock.Now
	// Metrics (NewMetrics) or, when nil, Registry to register them on (one
	// of them is required).
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

// DefaultConfig returns the page's defaults: 8 h sessions, 50 search
// results, 10 failed token checks per address refilled one per 6 s, the
// real clock, no logs.
func DefaultConfig() Config {
	return Config{SessionTTL: 8 * time.Hour, MaxSearchResults: 50, FailedTokenBurst: 10, FailedTokenEvery: 6 * time.Second,
		Now: clock.Real, Logger: slog.New(slog.DiscardHandler)}
}

// Validate says what makes c unusable.
func (c Config) Validate() error {
	switch {
	case c.Finder == nil || c.Recorder == nil || c.Tokens == nil:
		return errors.New("audit page: a finder, a recorder and tokens are required")
	case len(c.SessionKeys) == 0:
		return errors.New("audit page: no session key")
	case c.ProxyUserHeader != "" && len(c.ProxyCIDRs) == 0:
		return errors.New("audit page: a trusted proxy header needs the proxies' addresses (CIDRs)")
	case c.ProxyUserHeader != "" && len(c.ProxySecrets) == 0:
		return errors.New("audit page: a trusted proxy header needs the proxy's shared secret")
	case c.SessionTTL <= 0 || c.MaxSearchResults <= 0 || c.FailedTokenBurst <= 0 || c.FailedTokenEvery <= 0:
		return errors.New("audit page: the session lifetime, the search results and the failed token limits must be positive (start from DefaultConfig)")
	case c.Now == nil || c.Logger == nil:
		return errors.New("audit page: a clock and a logger are required (start from DefaultConfig)")
	case c.Metrics == nil && c.Registry == nil:
		return errors.New("audit page: metrics or a registry to register them on are required")
	}
	for _, k := range c.ProxySecrets {
		if len(k) < MinSessionKeyLen {
			return fmt.Errorf("audit page: proxy secrets must be at least %d bytes", MinSessionKeyLen)
		}
	}
	for _, k := range c.SessionKeys {
		if len(k) < MinSessionKeyLen {
			return fmt.Errorf("audit page: session keys must be at least %d bytes", MinSessionKeyLen)
		}
	}
	_, err := publicOrigin(c.PublicURL)
	return err
}

// publicOrigin is the origin of the page's public URL ("" when none).
func publicOrigin(public string) (string, error) {
	if public == "" {
		return "", nil
	}
	u, err := url.Parse(public)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("audit page: public URL %q: want http(s)://host[:port]", public)
	}
	return u.Scheme + "://" + u.Host, nil
}

// New returns the page's server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(cfg.Registry)
	}
	origin, err := publicOrigin(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, sessions: sessions{keys: cfg.SessionKeys, ttl: cfg.SessionTTL}, now: cfg.Now, log: cfg.Logger, m: cfg.Metrics, origin: origin,
		failures: authlimit.New(cfg.Now, cfg.FailedTokenBurst, cfg.FailedTokenEvery, maxFailingAddrs)}
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
