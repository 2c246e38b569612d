package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

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

func remoteAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// identityRole reports whether p has the identity role; when not, the
// request is answered 403 with why (counted as forbidden_role) and causes
// nothing else.
func (s *Server) identityRole(w http.ResponseWriter, r *http.Request, p Principal, why string) bool {
	if p.CanSeeIdentity() {
		return true
	}
	s.m.authFailure(reasonForbidden)
	s.fail(w, r, http.StatusForbidden, why)
	return false
}
