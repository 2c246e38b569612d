// Package ingest is faceharvest's front door: Megvii callbacks, Baidu
// completion redirects and token registrations become events on Kafka. A
// request is answered 2xx only after the broker acknowledged its event
// (acks=all); anything else is answered with an error and loses nothing
// already acknowledged.
package ingest

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/faceharvest/faceharvest/pkg/authlimit"
	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// Routes, stable: vendors and apps are configured with them.
const (
	RouteMegviiCallback = "/v1/callbacks/megvii"
	RouteBaiduSuccess   = "/v1/callbacks/baidu/success"
	RouteBaiduFailure   = "/v1/callbacks/baidu/failure"
	RouteTokens         = "/v1/tokens"
	RouteMegviiReturn   = "/v1/callbacks/megvii/return"
	RouteMegviiTokens   = "/v1/megvii/tokens"
	RouteBaiduTokens    = "/v1/baidu/tokens"
)

// Publisher writes messages and returns once the broker acknowledged all of
// them. *bus.Writer is one.
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...contract.Message) error
}

// Server serves ingest's routes.
type Server struct {
	cfg      Config
	pub      Publisher
	log      *slog.Logger
	m        metrics
	landing  *landingSigner // nil: no landing is accepted
	inFlight atomic.Int64   // requests being served, for MaxInFlight
	issuing  chan struct{}  // a slot per issuing request in progress
	// bearers are the SHA-256 of the accepted bearer tokens.
	bearers [][sha256.Size]byte
	// owners remembers which caller registered each verification first.
	owners *owners
	// issueRate limits each caller's issuing requests.
	issueRate *callerRates
	// refusalLogs limits the log lines of refusals; refusalsUnlogged
	// counts those not logged since the last one that was.
	refusalLogs *callerRates
	// failures limits wrong bearer tokens per client address.
	failures         *authlimit.Failures
	refusalsUnlogged atomic.Int64
	// retryAfter is the Retry-After value: whole seconds, at least 1.
	retryAfter string
	// waits are the publishes waiting for the broker, for MaxPublishWait.
	waits publishWaits
}

// New validates cfg (Validate) and returns a server publishing through pub.
func New(cfg Config, pub Publisher) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	landing, err := newLandingSigner(cfg.PublicURL, cfg.LandingKeys)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = clock.Real
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, pub: pub, log: cfg.Logger, landing: landing, m: newMetrics(cfg.Registry), issuing: make(chan struct{}, cfg.MaxIssuing),
		owners: newOwners(maxOwners), issueRate: newCallerRates(cfg.Now, cfg.IssueRate, cfg.IssueBurst),
		refusalLogs: newCallerRates(cfg.Now, refusalLogRate, refusalLogBurst),
		failures:    authlimit.New(cfg.Now, cfg.FailedTokenBurst, cfg.FailedTokenEvery, maxFailingAddrs)}
	s.retryAfter = strconv.Itoa(max(1, int(cfg.RetryAfter.Seconds())))
	for _, t := range cfg.BearerTokens {
		s.bearers = append(s.bearers, sha256.Sum256([]byte(t.Reveal())))
	}
	return s, nil
}

// Handler returns the routes, each with request ids, metrics, limits and
// panic recovery.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	callback := s.wrap(RouteMegviiCallback, s.megviiCallback)
	mux.Handle("POST "+RouteMegviiCallback, callback)
	mux.Handle("GET "+RouteBaiduSuccess, s.wrap(RouteBaiduSuccess, s.baiduLanding("success")))
	mux.Handle("GET "+RouteBaiduFailure, s.wrap(RouteBaiduFailure, s.baiduLanding("failure")))
	mux.Handle("POST "+RouteTokens, s.wrap(RouteTokens, s.registerTokens))
	mux.Handle("POST "+RouteMegviiReturn, s.wrap(RouteMegviiReturn, s.megviiReturn))
	mux.Handle("POST "+RouteMegviiTokens, s.wrap(RouteMegviiTokens, s.issueRoute(RouteMegviiTokens, megvii.Vendor, func() bool { return s.cfg.Megvii != nil }, checkIssue[MegviiIssueRequest], s.issueMegvii)))
	mux.Handle("POST "+RouteBaiduTokens, s.wrap(RouteBaiduTokens, s.issueRoute(RouteBaiduTokens, baidu.Vendor, func() bool { return s.cfg.Baidu != nil }, checkIssue[BaiduIssueRequest], s.issueBaidu)))
	// Wrong methods on known routes: 405 with Allow, counted.
	for route, allow := range map[string]string{RouteMegviiCallback: "POST", RouteBaiduSuccess: "GET", RouteBaiduFailure: "GET", RouteTokens: "POST",
		RouteMegviiReturn: "POST", RouteMegviiTokens: "POST", RouteBaiduTokens: "POST"} {
		mux.Handle(route, s.wrap(route, func(w http.ResponseWriter, r *http.Request) *reqError {
			w.Header().Set("Allow", allow)
			return &reqError{status: http.StatusMethodNotAllowed, reason: "method", msg: "use " + allow}
		}))
	}
	mux.Handle("/", s.wrap("other", func(w http.ResponseWriter, r *http.Request) *reqError {
		return &reqError{status: http.StatusNotFound, reason: "route", msg: "no such route"}
	}))
	// Every vendor call is a callback: straight to its handler, where the
	// mux would route it all the same.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == RouteMegviiCallback {
			callback.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// LimitListener wraps ln so that at most MaxConnections connections are
// open at once, idle keep-alive ones included (--max-inflight counts
// requests, not connections): a further connection waits in the kernel's
// accept queue, costing this process nothing, until one closes. Each open
// connection holds about 20 KiB (its buffers and goroutine); an idle one
// is closed after IdleTimeout.
func (s *Server) LimitListener(ln net.Listener) net.Listener {
	return netutil.LimitListener(ln, s.cfg.MaxConnections)
}

// HTTPServer returns the http.Server to serve Handler with: small headers
// and short read timeouts, so that a slow or silent client holds a
// connection for seconds, not minutes. log receives the server's own errors.
func (s *Server) HTTPServer(log *slog.Logger) *http.Server {
	if log == nil {
		log = s.log
	}
	return &http.Server{
		Handler:           s.Handler(),
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		// Reading, then (issuing) a claim, the vendor and the answer's
		// record, then waiting for the broker, then answering.
		WriteTimeout: s.cfg.ReadTimeout + s.cfg.VendorTimeout + 3*s.cfg.PublishTimeout + 5*time.Second,
		IdleTimeout:  s.cfg.IdleTimeout,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
