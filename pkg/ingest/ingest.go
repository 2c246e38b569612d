// Package ingest is faceharvest's front door: Megvii callbacks, Baidu
// completion redirects and token registrations become events on Kafka. A
// request is answered 2xx only after the broker acknowledged its event
// (acks=all); anything else is answered with an error and loses nothing
// already acknowledged.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/faceharvest/faceharvest/pkg/authlimit"
	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
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

// Config configures the server. Zero values take DefaultConfig's (noted).
type Config struct {
	MegviiSecrets []config.Secret // callback signing secrets; several during rotation
	LandingKeys   []config.Secret // sign Baidu landing URLs (the first) and verify them (any); none: landings are refused
	PublicURL     string          // ingest's external base URL, for the landing URLs
	BearerTokens  []config.Secret // accepted by the token API
	// FailedTokenBurst wrong bearer tokens are allowed per client address,
	// refilled one per FailedTokenEvery; beyond, 429 without the token
	// being checked (10 and 6 s).
	FailedTokenBurst     int
	FailedTokenEvery     time.Duration
	BaiduSuccessRedirect string // where the browser goes after a success landing ("" answers a small page)
	BaiduFailureRedirect string
	MaxBodyBytes         int64         // request body limit of the token API and the issuing routes, which authenticate first (1 MiB)
	MaxCallbackBytes     int64         // request body limit of the Megvii callback and return routes, read before their signature is checked (64 KiB)
	MaxConnections       int           // connections held open at once, idle ones included (512; the listener's, see LimitListener)
	IdleTimeout          time.Duration // how long a keep-alive connection may stay idle (15 s)
	PublishTimeout       time.Duration // how long a request waits for the broker (5 s)
	RetryAfter           time.Duration // sent with 503 (5 s)
	// MaxPublishWait: once the oldest publish in progress has waited this
	// long for the broker, the routes that may shed answer 503 at once,
	// before reading the body (2 s; below PublishTimeout).
	MaxPublishWait time.Duration
	MaxTokenAge          time.Duration // oldest issued_at accepted (7 days)
	MaxClockSkew         time.Duration // newest issued_at accepted, ahead of now (5 min)
	MaxLandingAge        time.Duration // oldest Baidu landing URL accepted, by its signed issue time (24 h)
	MaxBatch             int           // registrations per request (1000)
	MaxInFlight          int           // requests served at once; beyond, 503 at once (128)
	MaxHeaderBytes       int           // request line and headers (16 KiB; 431 beyond)
	ReadHeaderTimeout    time.Duration // to read the request line and headers (5 s)
	ReadTimeout          time.Duration // to read the whole request, body included (10 s)
	// Issuing (POST /v1/megvii/tokens, /v1/baidu/tokens): a nil issuer
	// answers its route 404. Issuing needs Idempotency and the landing keys.
	Megvii        MegviiIssuer
	Baidu         BaiduIssuer
	BaiduH5URL    string        // the H5 page users are sent to (baidu.DefaultH5URL)
	Idempotency   *Idempotency  // Idempotency-Key state
	MaxIssuing    int           // issuing requests at once; beyond, 503 at once (16)
	IssueRate     float64       // issuing requests a second per caller, sustained (20)
	IssueBurst    int           // issuing requests per caller at once; beyond the bucket, 429 (50)
	VendorTimeout time.Duration // bounds an issuing request's vendor calls (15 s)
	Now           clock.Now
	Registry      prometheus.Registerer
	Logger        *slog.Logger
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

// New validates cfg and returns a server publishing through pub.
func New(cfg Config, pub Publisher) (*Server, error) {
	if len(cfg.MegviiSecrets) == 0 {
		return nil, errors.New("no Megvii API secret to verify callbacks with (FACEHARVEST_MEGVII_API_SECRET)")
	}
	if len(cfg.BearerTokens) == 0 {
		return nil, errors.New("no bearer token for the token API (FACEHARVEST_INGEST_TOKENS)")
	}
	for _, u := range []string{cfg.BaiduSuccessRedirect, cfg.BaiduFailureRedirect} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "/") {
			return nil, fmt.Errorf("redirect target %q: want an absolute http(s) URL or a path", u)
		}
	}
	landing, err := newLandingSigner(cfg.PublicURL, cfg.LandingKeys)
	if err != nil {
		return nil, err
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def := DefaultConfig()
	setDur(&cfg.PublishTimeout, def.PublishTimeout)
	setDur(&cfg.RetryAfter, def.RetryAfter)
	setDur(&cfg.MaxPublishWait, def.MaxPublishWait)
	setDur(&cfg.MaxTokenAge, def.MaxTokenAge)
	setDur(&cfg.MaxClockSkew, def.MaxClockSkew)
	setDur(&cfg.MaxLandingAge, def.MaxLandingAge)
	setDur(&cfg.ReadHeaderTimeout, def.ReadHeaderTimeout)
	setDur(&cfg.ReadTimeout, def.ReadTimeout)
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = def.MaxInFlight
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = def.MaxHeaderBytes
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.MaxCallbackBytes <= 0 {
		cfg.MaxCallbackBytes = def.MaxCallbackBytes
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = def.MaxConnections
	}
	setDur(&cfg.IdleTimeout, def.IdleTimeout)
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = def.MaxBatch
	}
	if cfg.MaxIssuing <= 0 {
		cfg.MaxIssuing = def.MaxIssuing
	}
	if cfg.FailedTokenBurst <= 0 {
		cfg.FailedTokenBurst = def.FailedTokenBurst
	}
	setDur(&cfg.FailedTokenEvery, def.FailedTokenEvery)
	if cfg.IssueRate <= 0 {
		cfg.IssueRate = def.IssueRate
	}
	if cfg.IssueBurst <= 0 {
		cfg.IssueBurst = def.IssueBurst
	}
	setDur(&cfg.VendorTimeout, def.VendorTimeout)
	if cfg.BaiduH5URL == "" {
		cfg.BaiduH5URL = baidu.DefaultH5URL
	}
	if cfg.Megvii != nil || cfg.Baidu != nil {
		if landing == nil {
			return nil, errors.New("issuing tokens needs --public-url and a landing key (FACEHARVEST_LANDING_KEY): the callback and landing URLs start with it")
		}
		if cfg.Idempotency == nil {
			return nil, errors.New("issuing tokens needs the idempotency state")
		}
		if cfg.Megvii != nil {
			if err := megviiNotifyPort(landing.base); err != nil {
				return nil, err
			}
		}
		if u, err := url.Parse(cfg.BaiduH5URL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return nil, fmt.Errorf("the Baidu H5 URL %q: want an absolute http(s) URL", cfg.BaiduH5URL)
		}
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

// closeUnread makes a refusal of a request that came with a body close
// its connection: net/http would otherwise read up to 256 KiB of the
// unread body (waiting for a silent client until the read timeout) before
// sending the answer, to keep the connection.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// Refusals logged: a burst of refusalLogBurst lines, then refusalLogRate a
// second; the next line logged says how many were not
// (refusals_not_logged). Metrics count every refusal.
const (
	refusalLogBurst = 20
	refusalLogRate  = 5
)

// maxLandingBody bounds what a landing (a GET, or a HEAD) may send as a
// body: it carries none.
const maxLandingBody = 1 << 10

// bodyLimit is route's request body limit: what it carries, no more. The
// callbacks (vendor-signed data, no images) are read before their
// signature is checked, so a stranger can send them: they get the small
// MaxCallbackBytes; the token API and issuing routes authenticate before
// reading, and take MaxBodyBytes (a Baidu issuing request may carry an
// image).
func (s *Server) bodyLimit(route string) int64 {
	switch route {
	case RouteMegviiCallback, RouteMegviiReturn:
		return s.cfg.MaxCallbackBytes
	case RouteTokens, RouteMegviiTokens, RouteBaiduTokens:
		return s.cfg.MaxBodyBytes
	}
	return maxLandingBody
}

// reqError is a refusal: its status, a metric reason and a message safe to
// show the caller (never a secret or an ID number).
type reqError struct {
	status int
	reason string
	msg    string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) wrap(route string, h func(http.ResponseWriter, *http.Request) *reqError) http.Handler {
	var answered sync.Map // status code -> its counter, looked up once
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		rid := r.Header.Get("X-Request-Id")
		if !validID(rid, 64) {
			// Unique, not secret: math/rand, without a system call.
			var b [8]byte
			var h [16]byte
			binary.LittleEndian.PutUint64(b[:], rand.Uint64())
			hex.Encode(h[:], b[:])
			rid = string(h[:])
		}
		w.Header()["X-Request-Id"] = []string{rid} // canonical already
		if s.inFlight.Add(1) > int64(s.cfg.MaxInFlight) {
			s.inFlight.Add(-1)
			s.shed(w, r, route, rid, shedInFlight, &answered)
			return
		}
		defer s.inFlight.Add(-1)
		if shedsOnPublishWait(route) && s.waits.longest(s.cfg.Now()) > s.cfg.MaxPublishWait {
			s.shed(w, r, route, rid, shedPublishWait, &answered)
			return
		}
		s.m.inflight.Inc()
		start := s.cfg.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.m.panics.Inc()
				s.log.Error("handler panic", "route", route, "request_id", rid, "panic", fmt.Sprint(p))
				if w.status == 0 {
					writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "request_id": rid})
				}
			}
			s.m.inflight.Dec()
			c, ok := answered.Load(w.status)
			if !ok {
				c, _ = answered.LoadOrStore(w.status, s.m.requests.WithLabelValues(route, strconv.Itoa(w.status)))
			}
			c.(prometheus.Counter).Inc()
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("request", "route", route, "status", w.status, "request_id", rid, "duration_ms", s.cfg.Now().Sub(start).Milliseconds())
			}
		}()
		r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(route))
		if e := h(w, r); e != nil {
			s.m.rejected.WithLabelValues(route, e.reason).Inc()
			closeUnread(w, r)
			// A 409 for another caller's verification is final: no
			// Retry-After (one for a key in progress).
			if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests || (e.status == http.StatusConflict && e.reason != "foreign_caller") {
				w.Header().Set("Retry-After", s.retryAfter)
			}
			if e.status == http.StatusUnauthorized && (route == RouteTokens || route == RouteMegviiTokens || route == RouteBaiduTokens) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="faceharvest"`)
			}
			level := slog.LevelInfo
			if e.status >= 500 {
				level = slog.LevelWarn
			}
			// Every refusal is counted; its log line only within the
			// limit, so that a stranger's flood does not flood the logs.
			if s.refusalLogs.allow("") {
				s.log.Log(r.Context(), level, "request refused", "route", route, "status", e.status, "reason", e.reason, "error", e.msg, "request_id", rid,
					"refusals_not_logged", s.refusalsUnlogged.Swap(0))
			} else {
				s.refusalsUnlogged.Add(1)
			}
			writeJSON(w, e.status, map[string]any{"error": e.msg, "request_id": rid})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// validID accepts ids and tokens of printable ASCII without spaces or
// separators that would confuse keys, logs or URLs.
func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// firstBodyBuf is the most a request's announced Content-Length reserves
// before its bytes arrive: a callback fits, and a stranger announcing a
// megabyte and sending nothing costs no more than this.
const firstBodyBuf = 16 << 10

// readBody reads the body into a buffer that grows with the bytes that
// arrive (doubling), never from the announced Content-Length alone.
func readBody(r *http.Request, limit int64) ([]byte, *reqError) {
	if r.ContentLength > limit {
		return nil, &reqError{status: http.StatusRequestEntityTooLarge, reason: "too_large", msg: fmt.Sprintf("body larger than %d bytes", limit)}
	}
	first := 4 << 10
	if n := r.ContentLength; n > 0 {
		first = int(min(n+1, firstBodyBuf)) // +1: the read that finds the end
	}
	b := make([]byte, 0, first)
	var err error
	for {
		if int64(len(b)) > limit {
			err = &http.MaxBytesError{Limit: limit}
			break
		}
		if len(b) == cap(b) {
			grown := make([]byte, len(b), max(len(b)+1, min(2*cap(b), int(limit)+1)))
			copy(grown, b)
			b = grown
		}
		var k int
		k, err = r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil {
			break
		}
	}
	if err == io.EOF {
		err = nil
		if r.ContentLength > 0 && int64(len(b)) != r.ContentLength {
			err = errors.New("body length differs from Content-Length")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &reqError{status: http.StatusRequestEntityTooLarge, reason: "too_large", msg: fmt.Sprintf("body larger than %d bytes", mbe.Limit)}
		}
		return nil, &reqError{status: http.StatusBadRequest, reason: "read", msg: "body could not be read"}
	}
	return b, nil
}

// publish writes the envelopes and waits for the broker's acknowledgement,
// for PublishTimeout at most. A caller that goes away does not cut it
// short: what was sent is either stored or refused, never abandoned midway.
func (s *Server) publish(envs ...contract.Envelope) *reqError {
	msgs := make([]contract.Message, len(envs))
	for i, e := range envs {
		msgs[i] = e.Message()
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PublishTimeout)
	defer cancel()
	defer s.waits.end(s.waits.begin(s.cfg.Now()))
	start := time.Now()
	err := s.pub.WriteMessages(ctx, msgs...)
	if err != nil {
		s.m.publishDur.WithLabelValues("error").Observe(time.Since(start).Seconds())
		s.log.Warn("publish failed", "error", err.Error(), "messages", len(msgs))
		return &reqError{status: http.StatusServiceUnavailable, reason: "broker", msg: "the event broker did not acknowledge in time: the event may have been stored; retrying is safe: the event id is stable"}
	}
	s.m.publishOK.Observe(time.Since(start).Seconds())
	for _, e := range envs {
		if c, ok := s.m.publishedByType[e.Type]; ok {
			c.Inc()
		} else {
			s.m.published.WithLabelValues(e.Type).Inc()
		}
	}
	return nil
}

// envelope encodes ev. dataChecked says ev.Data has passed
// megvii.Summarize, so is one valid JSON object: the event then carries it
// as such, not escaped into a string.
func (s *Server) envelope(typ, source, id string, t time.Time, ev contract.Event, dataChecked bool) contract.Envelope {
	var b []byte
	if dataChecked {
		b, _ = ev.AppendJSONDataObject(nil)
	} else {
		b, _ = json.Marshal(ev)
	}
	return contract.Envelope{ID: id, Source: source, Type: typ, Time: t, Key: contract.Key(ev.Vendor, ev.VerificationID), Value: b}
}

func (s *Server) megviiCallback(w http.ResponseWriter, r *http.Request) *reqError {
	env, e := s.megviiResultPost(r, "")
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "id": env.ID})
	return nil
}

// megviiReturn is the Megvii return landing: the browser posts the same
// vendor-signed data + sign as notify_url gets (document 000: return_url is
// called by POST through a page redirect). It is recorded as that callback
// (same ce_id), then the browser goes on to the customer's page signed into
// the landing URL. Unsigned landing URLs are refused before the body is read.
func (s *Server) megviiReturn(w http.ResponseWriter, r *http.Request) *reqError {
	bizNo, to, sig, problem := signedQuery(r.URL.RawQuery, "biz_no", 256)
	refuse := func(reason, msg string) *reqError {
		s.m.landingFail.WithLabelValues(reason).Inc()
		return &reqError{status: http.StatusUnauthorized, reason: "signature", msg: msg}
	}
	switch {
	case problem == "malformed":
		return &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "biz_no missing or invalid"}
	case s.landing == nil:
		return refuse("not_configured", "landing URLs are not configured")
	case problem == "mismatch":
		return refuse("mismatch", "landing signature does not match")
	case problem != "":
		return refuse(problem, "landing URL is not signed: ingest sets it as return_url when it issues the token")
	case !s.landing.verify(kindMegviiReturn, signedSubject(bizNo, to), sig):
		return refuse("mismatch", "landing signature does not match")
	}
	if _, e := s.megviiResultPost(r, bizNo); e != nil {
		return e
	}
	s.m.megviiReturns.Inc()
	landed(w, r, to)
	return nil
}

// megviiResultPost checks and publishes a Megvii data + sign post (notify_url
// or return_url). wantBizNo, when not empty, is the biz_no the post must
// carry (a return landing's).
func (s *Server) megviiResultPost(r *http.Request, wantBizNo string) (contract.Envelope, *reqError) {
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, err := megvii.MediaType(ct)
		if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "application/json" && mt != "text/json") {
			return contract.Envelope{}, &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/x-www-form-urlencoded or application/json"}
		}
	}
	body, e := readBody(r, s.cfg.MaxCallbackBytes)
	if e != nil {
		return contract.Envelope{}, e
	}
	cb, err := megvii.DecodeCallback(ct, body)
	switch {
	case errors.Is(err, megvii.ErrMissingSign):
		s.m.sigFail.WithLabelValues("missing").Inc()
		return contract.Envelope{}, &reqError{status: http.StatusUnauthorized, reason: "signature", msg: "missing sign"}
	case errors.Is(err, megvii.ErrUnsupportedMediaType):
		return contract.Envelope{}, &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/x-www-form-urlencoded or application/json"}
	case err != nil:
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "body must carry data and sign"}
	}
	signer, err := megvii.VerifySignature(cb, s.cfg.MegviiSecrets)
	if err != nil {
		s.m.sigFail.WithLabelValues("mismatch").Inc()
		return contract.Envelope{}, &reqError{status: http.StatusUnauthorized, reason: "signature", msg: "signature does not match"}
	}
	res, err := cb.Summarize()
	if err != nil {
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "data is not a FaceID Lite result object"}
	}
	bizID := res.BizInfo.BizID
	if !validID(bizID, 256) {
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "data lacks a valid biz_info.biz_id"}
	}
	if wantBizNo != "" && res.BizInfo.BizNo != wantBizNo {
		return contract.Envelope{}, &reqError{status: http.StatusBadRequest, reason: "invalid", msg: "data is not this landing's verification (biz_no differs)"}
	}
	now := s.cfg.Now().UTC()
	ev := contract.Event{Vendor: contract.Megvii, VerificationID: bizID, BizNo: res.BizInfo.BizNo, ReceivedAt: now, Status: string(res.Status), Data: cb.Data,
		Sign: cb.Sign, SignedBy: megvii.SecretFingerprint(s.cfg.MegviiSecrets[signer])}
	env := s.envelope(contract.TypeMegviiCallback, "/ingest"+RouteMegviiCallback, contract.EventID(string(contract.Megvii), bizID, "callback", cb.Data), now, ev, true)
	if e := s.publish(env); e != nil {
		return contract.Envelope{}, e
	}
	return env, nil
}

func (s *Server) baiduLanding(outcome string) func(http.ResponseWriter, *http.Request) *reqError {
	target := s.cfg.BaiduSuccessRedirect
	if outcome == "failure" {
		target = s.cfg.BaiduFailureRedirect
	}
	refuse := func(reason, msg string) *reqError {
		s.m.landingFail.WithLabelValues(reason).Inc()
		return &reqError{status: http.StatusUnauthorized, reason: "signature", msg: msg}
	}
	return func(w http.ResponseWriter, r *http.Request) *reqError {
		vt, to, sig, problem := landingQuery(r.URL.RawQuery)
		switch {
		case problem == "malformed":
			return &reqError{status: http.StatusBadRequest, reason: "malformed", msg: "verify_token missing or invalid"}
		case s.landing == nil:
			return refuse("not_configured", "landing URLs are not configured")
		case problem == "mismatch":
			return refuse("mismatch", "landing signature does not match")
		case problem != "":
			return refuse(problem, "landing URL is not signed: use the success_url or failure_url answered by POST /v1/tokens")
		}
		at, caller, ok := landingTimeQuery(r.URL.RawQuery)
		now := s.cfg.Now().UTC()
		switch {
		case !ok:
			return refuse("mismatch", "landing URL carries no signed issue time (an URL of an earlier release, or altered): use the success_url or failure_url answered by POST /v1/tokens")
		case !s.landing.verify(timedKind(outcome), timedSubject(vt, to, at, caller), sig):
			return refuse("mismatch", "landing signature does not match")
		case now.Sub(time.Unix(at, 0)) > s.cfg.MaxLandingAge || time.Unix(at, 0).After(now.Add(s.cfg.MaxClockSkew)):
			return refuse("stale", "landing URL expired: it was issued more than "+s.cfg.MaxLandingAge.String()+" ago")
		case r.Method != http.MethodGet:
			// A HEAD (a link checker, a prefetch) is not the user landing.
			w.Header().Set("Allow", "GET")
			return &reqError{status: http.StatusMethodNotAllowed, reason: "method", msg: "use GET"}
		}
		ev := contract.Event{Vendor: contract.Baidu, VerificationID: vt, ReceivedAt: now, Status: outcome, Caller: caller}
		env := s.envelope(contract.TypeBaiduCompletion, "/ingest/v1/callbacks/baidu/"+outcome, contract.EventID(string(contract.Baidu), vt, "completion", outcome), now, ev, false)
		if e := s.publish(env); e != nil {
			return e
		}
		page := target
		if to != "" {
			// The customer's page, signed with the token when it was issued.
			page = to
		}
		landed(w, r, page)
		return nil
	}
}

// landed sends the browser to target: a configured page or one signed into
// the landing URL, never one taken from the request alone; "" answers a
// short page.
func landed(w http.ResponseWriter, r *http.Request, target string) {
	if target != "" {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "<!doctype html><title>Verification received</title><p>Your verification has been received. You may close this page.</p>\n")
}

// Registration is one issued token the customer's back end registers.
type Registration struct {
	Vendor         string            `json:"vendor"`
	VerificationID string            `json:"verification_id"` // Megvii biz_id, Baidu verify_token
	IssuedAt       *time.Time        `json:"issued_at,omitempty"`
	BizNo          string            `json:"biz_no,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

// maxFailingAddrs bounds the client addresses whose wrong bearer tokens
// are tracked (beyond, they share one bucket).
const maxFailingAddrs = 10000

// errUnauthorized and errTooManyFailures are authorized's refusals.
var (
	errUnauthorized    = &reqError{status: http.StatusUnauthorized, reason: "unauthorized", msg: "missing or unknown bearer token"}
	errTooManyFailures = &reqError{status: http.StatusTooManyRequests, reason: "too_many_failures", msg: "too many wrong bearer tokens from this address: retry after Retry-After seconds"}
)

// authorized returns the caller (callerID of its bearer token) of a
// request that carries an accepted bearer token, or its refusal: 401, or
// 429 (the token not checked) for an address that sent FailedTokenBurst
// wrong ones lately.
func (s *Server) authorized(r *http.Request) (string, *reqError) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", errUnauthorized
	}
	addr := clientAddr(r)
	if s.failures.Blocked(addr) > 0 {
		return "", errTooManyFailures
	}
	// Hashes of equal length are compared, so that the time taken tells
	// nothing of the configured tokens' lengths.
	got := sha256.Sum256([]byte(tok))
	match := 0
	for _, want := range s.bearers {
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if match != 1 {
		s.failures.Fail(addr)
		return "", errUnauthorized
	}
	return callerID(tok), nil
}

// clientAddr is the request's peer address without its port.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (s *Server) registerTokens(w http.ResponseWriter, r *http.Request) *reqError {
	caller, e := s.authorized(r)
	if e != nil {
		return e
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/json"}
	}
	body, e := readBody(r, s.cfg.MaxBodyBytes)
	if e != nil {
		return e
	}
	regs, err := decodeRegistrations(body)
	if err != nil {
		return &reqError{status: http.StatusBadRequest, reason: "malformed", msg: err.Error()}
	}
	if len(regs) == 0 || len(regs) > s.cfg.MaxBatch {
		return &reqError{status: http.StatusBadRequest, reason: "invalid", msg: fmt.Sprintf("tokens: send 1 to %d registrations", s.cfg.MaxBatch)}
	}
	now := s.cfg.Now().UTC()
	envs := make([]contract.Envelope, 0, len(regs))
	seen := map[string]bool{}
	for i, reg := range regs {
		field := func(f string) string {
			if len(regs) == 1 {
				return f
			}
			return fmt.Sprintf("tokens[%d].%s", i, f)
		}
		ev, err := s.validate(reg, now, field)
		if err != nil {
			return &reqError{status: http.StatusBadRequest, reason: "invalid", msg: err.Error()}
		}
		key := contract.Key(ev.Vendor, ev.VerificationID)
		if seen[key] {
			continue
		}
		seen[key] = true
		if !s.owners.mayRegister(key, caller) {
			return &reqError{status: http.StatusConflict, reason: "foreign_caller", msg: fmt.Sprintf("%s: %s is registered by another caller; nothing was registered", field("verification_id"), key)}
		}
		ev.Caller = caller
		id := contract.EventID(string(ev.Vendor), ev.VerificationID, "token", ev.IssuedAt.Format(time.RFC3339Nano), ev.BizNo)
		envs = append(envs, s.envelope(contract.TypeTokenRegistered, "/ingest"+RouteTokens, id, *ev.IssuedAt, ev, false))
	}
	s.m.batch.Observe(float64(len(envs)))
	if e := s.publish(envs...); e != nil {
		return e
	}
	for _, e := range envs {
		s.owners.bind(e.Key, caller)
	}
	out := make([]map[string]string, len(envs))
	for i, e := range envs {
		out[i] = map[string]string{"key": e.Key, "id": e.ID}
		if vt, ok := strings.CutPrefix(e.Key, string(contract.Baidu)+":"); ok && s.landing != nil {
			out[i]["success_url"] = s.landing.urlFor("success", vt, "", caller, now)
			out[i]["failure_url"] = s.landing.urlFor("failure", vt, "", caller, now)
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"registered": out})
	return nil
}

// decodeRegistrations accepts one registration, an array of them, or
// {"tokens": [...]}, refusing unknown fields.
func decodeRegistrations(body []byte) ([]Registration, error) {
	var raw json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, errors.New("body: want a JSON object or array")
	}
	if dec.More() {
		return nil, errors.New("body: one JSON value expected")
	}
	strict := func(b []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("body: %s", jsonMsg(err))
		}
		return nil
	}
	switch raw[0] {
	case '[':
		var regs []Registration
		return regs, strict(raw, &regs)
	case '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("body: %s", jsonMsg(err))
		}
		if list, ok := probe["tokens"]; ok {
			if len(probe) != 1 {
				return nil, errors.New("body: with \"tokens\", no other field")
			}
			var regs []Registration
			return regs, strict(list, &regs)
		}
		var reg Registration
		if err := strict(raw, &reg); err != nil {
			return nil, err
		}
		return []Registration{reg}, nil
	}
	return nil, errors.New("body: want a JSON object or array")
}

func jsonMsg(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %s: want %s", ute.Field, ute.Type)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return "issued_at: want RFC 3339, e.g. 2026-01-02T15:04:05Z"
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	return "invalid JSON"
}

func (s *Server) validate(reg Registration, now time.Time, field func(string) string) (contract.Event, error) {
	v, err := contract.ParseVendor(reg.Vendor)
	if err != nil {
		return contract.Event{}, fmt.Errorf("%s: %v", field("vendor"), err)
	}
	if !validID(reg.VerificationID, 256) {
		return contract.Event{}, fmt.Errorf("%s: required, 1-256 printable characters without spaces", field("verification_id"))
	}
	issued := now
	if reg.IssuedAt != nil {
		issued = reg.IssuedAt.UTC()
		switch {
		case issued.After(now.Add(s.cfg.MaxClockSkew)):
			return contract.Event{}, fmt.Errorf("%s: %s is more than %s in the future", field("issued_at"), issued.Format(time.RFC3339), s.cfg.MaxClockSkew)
		case issued.Before(now.Add(-s.cfg.MaxTokenAge)):
			return contract.Event{}, fmt.Errorf("%s: %s is more than %s in the past: its vendor window has closed", field("issued_at"), issued.Format(time.RFC3339), s.cfg.MaxTokenAge)
		}
	}
	if len(reg.BizNo) > 256 {
		return contract.Event{}, fmt.Errorf("%s: at most 256 bytes", field("biz_no"))
	}
	if !contract.PlainText(reg.BizNo) {
		return contract.Event{}, fmt.Errorf("%s: UTF-8 text without control characters", field("biz_no"))
	}
	if len(reg.Metadata) > 32 {
		return contract.Event{}, fmt.Errorf("%s: at most 32 entries", field("metadata"))
	}
	for k, val := range reg.Metadata {
		if k == "" || len(k) > 64 || len(val) > 1024 {
			return contract.Event{}, fmt.Errorf("%s: keys 1-64 bytes, values at most 1024", field("metadata"))
		}
	}
	return contract.Event{Vendor: v, VerificationID: reg.VerificationID, BizNo: reg.BizNo, IssuedAt: &issued, ReceivedAt: now, Metadata: reg.Metadata}, nil
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

// megviiNotifyPorts are the ports FaceID calls a notify_url on (documents
// 000 and 002, Return_url 和 Notify_url 回调: 支持的端口有:443,5000,16003,8883,8028).
var megviiNotifyPorts = []string{"443", "5000", "16003", "8883", "8028"}

// megviiNotifyPort checks that the notify_url ingest gives get_token, under
// the public URL, is on a port FaceID calls: on any other the callback would
// never come. A loopback host (development, the simulator) may use any.
func megviiNotifyPort(publicURL string) error {
	u, err := url.Parse(publicURL)
	if err != nil {
		return err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) || slices.Contains(megviiNotifyPorts, port) {
		return nil
	}
	return fmt.Errorf("public URL %q: Megvii calls notify_url only on ports %s, not %s (documents 000 and 002)", publicURL, strings.Join(megviiNotifyPorts, ", "), port)
}
