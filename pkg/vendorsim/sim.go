// Package vendorsim simulates Megvii FaceID Lite and Baidu H5 faceprint as
// their documents describe them: verifications that progress on a schedule,
// signed callbacks and browser redirects, retention windows and the one-shot
// call budget, concurrency and QPS limits, latency, injected faults, real
// JPEG images and MP4 videos. Time is a controllable clock. Every call is
// counted per verification so tests can prove a one-shot call was made once.
package vendorsim

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/faceharvest/faceharvest/pkg/clock"
)

// Limits bound one vendor's API.
type Limits struct {
	Concurrency int     // requests in flight at once; 0 = unlimited
	QPS         float64 // requests per real second; 0 = unlimited
}

// Latency is a log-normal service-time distribution given by its median and
// 99th percentile (real time). Zero P50 means no added latency.
type Latency struct {
	P50, P99 time.Duration
}

// FaultRates are the probabilities, per API request, of each injected fault.
type FaultRates struct {
	Internal        float64 // 500 with the vendor's internal-error body
	HTML            float64 // 502 with an HTML page from a gateway
	Reset           float64 // the connection is reset without an answer
	Slow            float64 // half the body, a pause of SlowPause, then the rest
	Malformed       float64 // a 200 whose JSON body is cut in half
	TruncatedBase64 float64 // images' base64 payloads lose their last characters
}

// Config configures a Sim. Zero values take the documents' defaults.
type Config struct {
	Clock   *clock.Sim // simulated time; a frozen clock at 2026-01-01 when nil
	RealNow clock.Now  // real time, for QPS; time.Now when nil
	Seed    uint64     // seeds latency and fault draws

	MegviiAPIKey, MegviiAPISecret string
	MegviiRetention               time.Duration // how long get_result answers after the token is issued (24 h)
	// MegviiWindowLead starts the retention window this long before the
	// token's issue (0): neither document says when the window starts, and a
	// vendor whose clock or counting differs from the harvester's assumption
	// (the token's issue) must not make it lose a result.
	MegviiWindowLead     time.Duration
	MegviiCallBudget     int // get_result calls that return data (1)
	MegviiLimits         Limits
	MegviiCallbackFormat string // "form" (default) or "json"
	MegviiNotifyURL      string // default notify_url for verifications created without one

	BaiduAPIKey, BaiduSecretKey string
	BaiduAccessTokenTTL         time.Duration // 30 days
	BaiduVerifyTokenTTL         time.Duration // 2 h to start a verification
	BaiduRetention              time.Duration // 3 days of query endpoints after verification
	BaiduMediaRetention         time.Duration // 1 day of media URLs after verification
	BaiduLimits                 Limits
	BaiduSuccessURL             string // default success landing for verifications created without one
	BaiduFailureURL             string
	// BaiduPages, when set, gives a new verification without pages of its
	// own (in its spec or DefaultBaidu) its success and failure pages from
	// its token, before BaiduSuccessURL and BaiduFailureURL, as a customer builds
	// the H5 URL from the signed landing URLs ingest answers (in-process
	// tests: ingest's Server.LandingURL). It is called with the simulator's
	// lock held and must not call the simulator.
	BaiduPages     func(verifyToken string) (successURL, failureURL string)
	BaiduPublicURL string // root of media URLs handed out, e.g. http://127.0.0.1:8002

	Latency    Latency
	Faults     FaultRates
	SlowPause  time.Duration // 200 ms
	ImageBytes int           // size of each simulated image (32 KiB)
	VideoBytes int64         // size of each simulated video (1 MiB)

	CallbackRetries  int           // deliveries tried per callback (8)
	CallbackBackoff  time.Duration // simulated time between tries, doubling (5 s)
	CallbackParallel int           // callbacks delivered at once (32)

	// DefaultMegvii and DefaultBaidu shape verifications started through the
	// vendor APIs (get_token, verifyToken/generate) rather than the control API.
	DefaultMegvii MegviiSpec
	DefaultBaidu  BaiduSpec

	HTTPClient *http.Client // for callbacks and redirects
	Registry   prometheus.Registerer
	Logger     *slog.Logger
}

func (c *Config) defaults() {
	if c.Clock == nil {
		c.Clock = clock.NewSim(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 0, nil)
	}
	if c.RealNow == nil {
		c.RealNow = clock.Real
	}
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDur(&c.MegviiRetention, 24*time.Hour)
	setDur(&c.BaiduAccessTokenTTL, 30*24*time.Hour)
	setDur(&c.BaiduVerifyTokenTTL, 2*time.Hour)
	setDur(&c.BaiduRetention, 72*time.Hour)
	setDur(&c.BaiduMediaRetention, 24*time.Hour)
	setDur(&c.SlowPause, 200*time.Millisecond)
	setDur(&c.CallbackBackoff, 5*time.Second)
	if c.MegviiCallBudget == 0 {
		c.MegviiCallBudget = 1
	}
	if c.MegviiCallbackFormat == "" {
		c.MegviiCallbackFormat = "form"
	}
	if c.ImageBytes == 0 {
		c.ImageBytes = 32 << 10
	}
	if c.VideoBytes == 0 {
		c.VideoBytes = 1 << 20
	}
	if c.CallbackRetries == 0 {
		c.CallbackRetries = 8
	}
	if c.CallbackParallel == 0 {
		c.CallbackParallel = 32
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Sim is the simulator. Its handlers serve the vendors' APIs.
type Sim struct {
	cfg      Config
	clk      *clock.Sim
	log      *slog.Logger
	jpegBase []byte

	mu     sync.Mutex
	megvii map[string]*megviiVerification // by biz_id
	baidu  map[string]*baiduVerification  // by verify_token
	tokens map[string]time.Time           // Baidu access_token -> expiry
	due    dueHeap                        // callbacks and redirects to deliver
	seq    uint64
	queued map[string][]queuedFault // vendor -> faults for the next calls
	// apiCalls counts every API request by vendor and endpoint, those
	// naming no verification (get_token, verifyToken/generate) included.
	apiCalls map[[2]string]int
	rng      *rand.Rand

	megviiGate, baiduGate *gate
	hold                  chan struct{} // tests: admitted requests wait here

	metrics metrics
}

type queuedFault struct {
	kind  string
	count int
}

type metrics struct {
	requests  *prometheus.CounterVec
	inflight  *prometheus.GaugeVec
	callbacks *prometheus.CounterVec
	verifs    *prometheus.GaugeVec
	media     *prometheus.CounterVec
}

// New returns a simulator.
func New(cfg Config) *Sim {
	cfg.defaults()
	f := promauto.With(cfg.Registry)
	s := &Sim{
		cfg: cfg, clk: cfg.Clock, log: cfg.Logger, jpegBase: baseJPEG(),
		megvii: map[string]*megviiVerification{}, baidu: map[string]*baiduVerification{},
		tokens: map[string]time.Time{}, queued: map[string][]queuedFault{},
		rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		metrics: metrics{
			requests: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_vendorsim_requests_total",
				Help: "Vendor API requests answered, by vendor, endpoint and outcome (ok or the error or fault answered)."}, []string{"vendor", "endpoint", "outcome"}),
			inflight: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_vendorsim_inflight_requests",
				Help: "Vendor API requests being served, by vendor."}, []string{"vendor"}),
			callbacks: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_vendorsim_callbacks_total",
				Help: "Callback (Megvii) and redirect (Baidu) deliveries, by vendor and outcome."}, []string{"vendor", "outcome"}),
			verifs: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_vendorsim_verifications",
				Help: "Verifications the simulator holds, by vendor."}, []string{"vendor"}),
			media: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_vendorsim_media_bytes_total",
				Help: "Media bytes served, by kind."}, []string{"kind"}),
		},
	}
	s.megviiGate = newGate(cfg.MegviiLimits, cfg.RealNow)
	s.baiduGate = newGate(cfg.BaiduLimits, cfg.RealNow)
	return s
}

// Clock returns the simulated clock.
func (s *Sim) Clock() *clock.Sim { return s.clk }

// Config returns the effective configuration.
func (s *Sim) Config() Config { return s.cfg }

// SetBaiduPublicURL sets the root of handed-out media URLs (known once the
// Baidu listener is bound).
func (s *Sim) SetBaiduPublicURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.BaiduPublicURL = u
}

// newID returns a unique id with a prefix, derived from a counter and the seed
// so that runs are reproducible.
func (s *Sim) newIDLocked(prefix string) string {
	s.seq++
	sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d", s.cfg.Seed, s.seq))
	return prefix + hex.EncodeToString(sum[:16])
}

// gate enforces a concurrency limit and a token-bucket QPS limit.
type gate struct {
	limits   Limits
	inflight atomic.Int64
	now      clock.Now
	mu       sync.Mutex
	tokens   float64
	last     time.Time
}

func newGate(l Limits, now clock.Now) *gate {
	return &gate{limits: l, now: now, tokens: math.Max(l.QPS, 1), last: now()}
}

// admit reports whether a request may proceed; on true the caller must call
// release when done.
func (g *gate) admit() (ok bool, why string) {
	if g.limits.QPS > 0 {
		g.mu.Lock()
		now := g.now()
		burst := math.Max(g.limits.QPS, 1)
		g.tokens = math.Min(burst, g.tokens+now.Sub(g.last).Seconds()*g.limits.QPS)
		g.last = now
		if g.tokens < 1 {
			g.mu.Unlock()
			return false, "qps"
		}
		g.tokens--
		g.mu.Unlock()
	}
	n := g.inflight.Add(1)
	if g.limits.Concurrency > 0 && n > int64(g.limits.Concurrency) {
		g.inflight.Add(-1)
		return false, "concurrency"
	}
	return true, ""
}

func (g *gate) release() { g.inflight.Add(-1) }

// latency draws a service time.
func (s *Sim) latency() time.Duration {
	l := s.cfg.Latency
	if l.P50 <= 0 {
		return 0
	}
	s.mu.Lock()
	z := s.rng.NormFloat64()
	s.mu.Unlock()
	sigma := 0.0
	if l.P99 > l.P50 {
		sigma = math.Log(float64(l.P99)/float64(l.P50)) / 2.326
	}
	return time.Duration(float64(l.P50) * math.Exp(sigma*z))
}

// Fault kinds, for FaultRates, the control API and per-verification queues.
const (
	FaultInternal        = "internal"
	FaultHTML            = "html"
	FaultReset           = "reset"
	FaultSlow            = "slow"
	FaultMalformed       = "malformed"
	FaultTruncatedBase64 = "truncated_base64"
	FaultConcurrency     = "concurrency"   // answer the vendor's rate-limit error
	FaultAuth            = "auth"          // Megvii AUTHENTICATION_ERROR, Baidu 110 on every token
	FaultAuthorization   = "authorization" // Megvii AUTHORIZATION_ERROR:Denied., Baidu 17 daily limit
	FaultQuota           = "quota"         // Megvii AUTHORIZATION_ERROR:quota, Baidu 19 total limit
	FaultClusterLimit    = "cluster_limit" // Baidu 4
	// FaultForeignAccessToken: Baidu answers "Token无效或者已过期", as 001
	// says it does for a verify_token used with an access_token of another
	// application (Megvii: AUTHENTICATION_ERROR).
	FaultForeignAccessToken = "foreign_access_token"
)

// FaultKinds lists every fault kind.
var FaultKinds = []string{FaultInternal, FaultHTML, FaultReset, FaultSlow, FaultMalformed, FaultTruncatedBase64, FaultConcurrency, FaultAuth, FaultAuthorization, FaultQuota, FaultClusterLimit, FaultForeignAccessToken}

func validFault(k string) bool {
	for _, f := range FaultKinds {
		if f == k {
			return true
		}
	}
	return false
}

// QueueFault makes the next count API calls to vendor answer with kind.
func (s *Sim) QueueFault(vendor, kind string, count int) error {
	if vendor != "megvii" && vendor != "baidu" {
		return fmt.Errorf("unknown vendor %q", vendor)
	}
	if !validFault(kind) {
		return fmt.Errorf("unknown fault %q (known: %v)", kind, FaultKinds)
	}
	if count <= 0 {
		return fmt.Errorf("count must be positive")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued[vendor] = append(s.queued[vendor], queuedFault{kind, count})
	return nil
}

// drawFault picks the fault for one request: a per-verification queue first,
// then the vendor's queue, then the random rates.
func (s *Sim) drawFaultLocked(vendor string, perVerification *[]string) string {
	if perVerification != nil && len(*perVerification) > 0 {
		k := (*perVerification)[0]
		*perVerification = (*perVerification)[1:]
		return k
	}
	if q := s.queued[vendor]; len(q) > 0 {
		k := q[0].kind
		q[0].count--
		if q[0].count == 0 {
			q = q[1:]
		}
		s.queued[vendor] = q
		return k
	}
	r := s.cfg.Faults
	x := s.rng.Float64()
	for _, f := range []struct {
		p    float64
		kind string
	}{{r.Internal, FaultInternal}, {r.HTML, FaultHTML}, {r.Reset, FaultReset}, {r.Slow, FaultSlow}, {r.Malformed, FaultMalformed}, {r.TruncatedBase64, FaultTruncatedBase64}} {
		if x < f.p {
			return f.kind
		}
		x -= f.p
	}
	return ""
}

// dueItem is a callback or redirect to deliver at a simulated time.
type dueItem struct {
	at     time.Time
	vendor string
	id     string
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (s *Sim) scheduleLocked(at time.Time, vendor, id string) {
	heap.Push(&s.due, dueItem{at, vendor, id})
}

// DispatchDue delivers every callback and redirect due at the simulated now
// and returns how many deliveries were attempted. Tests call it after moving
// the clock; Run calls it on a ticker.
func (s *Sim) DispatchDue(ctx context.Context) int {
	now := s.clk.Now()
	s.mu.Lock()
	var items []dueItem
	for s.due.Len() > 0 && !s.due[0].at.After(now) {
		items = append(items, heap.Pop(&s.due).(dueItem))
	}
	s.mu.Unlock()
	sem := make(chan struct{}, s.cfg.CallbackParallel)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func(it dueItem) {
			defer func() { <-sem; wg.Done() }()
			if it.vendor == "megvii" {
				s.deliverMegvii(ctx, it.id)
			} else {
				s.deliverBaidu(ctx, it.id)
			}
		}(it)
	}
	wg.Wait()
	return len(items)
}

// PendingDeliveries returns how many callbacks and redirects wait.
func (s *Sim) PendingDeliveries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.due.Len()
}

// Run delivers due callbacks every interval of real time until ctx ends.
func (s *Sim) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.DispatchDue(ctx)
		}
	}
}

func (s *Sim) countAPICall(vendor, endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apiCalls == nil {
		s.apiCalls = map[[2]string]int{}
	}
	s.apiCalls[[2]string{vendor, endpoint}]++
}

// APICalls returns how many requests reached a vendor's endpoint, answered
// or refused (get_token, verifyToken/generate, ... by their endpoint names).
func (s *Sim) APICalls(vendor, endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiCalls[[2]string{vendor, endpoint}]
}

// retryLocked reschedules a failed delivery with doubling back-off, or gives
// up after CallbackRetries tries.
func (s *Sim) retryLocked(vendor, id string, attempts int) bool {
	if attempts >= s.cfg.CallbackRetries {
		return false
	}
	backoff := s.cfg.CallbackBackoff << min(attempts-1, 16)
	s.scheduleLocked(s.clk.Now().Add(backoff), vendor, id)
	return true
}

// admitAPI applies the vendor's limits, test hold and latency. It returns a
// release func, or "" and the rate-limit reason.
func (s *Sim) admitAPI(ctx context.Context, vendor string) (release func(), limited string) {
	g := s.megviiGate
	if vendor == "baidu" {
		g = s.baiduGate
	}
	ok, why := g.admit()
	if !ok {
		return nil, why
	}
	s.metrics.inflight.WithLabelValues(vendor).Inc()
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
		}
	}
	if d := s.latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return func() { g.release(); s.metrics.inflight.WithLabelValues(vendor).Dec() }, ""
}

// Inflight returns the vendor's requests in flight (admitted, not finished).
func (s *Sim) Inflight(vendor string) int64 {
	if vendor == "baidu" {
		return s.baiduGate.inflight.Load()
	}
	return s.megviiGate.inflight.Load()
}

// NextDelivery returns when the next callback or redirect is due (zero when
// none waits), so tests can jump the clock from event to event.
func (s *Sim) NextDelivery() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due.Len() == 0 {
		return time.Time{}
	}
	return s.due[0].at
}

// deliver makes one request to target, as a vendor's callback sender or a
// user's browser does, and returns its outcome: "delivered", "bad_url" (no
// request can be made of target), "unreachable", or "http_<status>" for an
// answer at or above failAt (300 for a callback, which a redirect does not
// deliver; 400 for a browser, which a redirect has reached a page). With
// contentType set, body is sent with it.
func (s *Sim) deliver(ctx context.Context, method, target, contentType string, body []byte, failAt int) string {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return "bad_url"
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return "unreachable"
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= failAt {
		return "http_" + strconv.Itoa(resp.StatusCode)
	}
	return "delivered"
}
