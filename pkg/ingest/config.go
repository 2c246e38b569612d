package ingest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
)

// Config configures the server. Start from DefaultConfig: New refuses a
// setting Validate refuses and fills in none (the defaults are noted). Only
// the dependencies may be nil: Now (the wall clock), Registry (a private
// one), Logger (discarded), and the issuing ones (no issuing).
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
	MaxPublishWait    time.Duration
	MaxTokenAge       time.Duration // oldest issued_at accepted (7 days)
	MaxClockSkew      time.Duration // newest issued_at accepted, ahead of now (5 min)
	MaxLandingAge     time.Duration // oldest Baidu landing URL accepted, by its signed issue time (24 h)
	MaxBatch          int           // registrations per request (1000)
	MaxInFlight       int           // requests served at once; beyond, 503 at once (128)
	MaxHeaderBytes    int           // request line and headers (16 KiB; 431 beyond)
	ReadHeaderTimeout time.Duration // to read the request line and headers (5 s)
	ReadTimeout       time.Duration // to read the whole request, body included (10 s)
	// Issuing (POST /v1/megvii/tokens, /v1/baidu/tokens): a nil issuer
	// answers its route 404. Issuing needs Idempotency and the landing keys.
	Megvii        MegviiIssuer
	Baidu         BaiduIssuer
	BaiduH5URL    string        // the H5 page users are sent to (baidu.DefaultH5URL; with issuing)
	Idempotency   *Idempotency  // Idempotency-Key state
	MaxIssuing    int           // issuing requests at once; beyond, 503 at once (16)
	IssueRate     float64       // issuing requests a second per caller, sustained (20)
	IssueBurst    int           // issuing requests per caller at once; beyond the bucket, 429 (50)
	VendorTimeout time.Duration // bounds an issuing request's vendor calls (15 s)
	Now           clock.Now
	Registry      prometheus.Registerer
	Logger        *slog.Logger
}

// DefaultConfig returns every setting's default: the flags take theirs
// from it, and every other caller starts from it.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:      1 << 20,
		MaxCallbackBytes:  64 << 10,
		MaxConnections:    512,
		IdleTimeout:       15 * time.Second,
		PublishTimeout:    5 * time.Second,
		RetryAfter:        5 * time.Second,
		MaxPublishWait:    2 * time.Second,
		MaxTokenAge:       7 * 24 * time.Hour,
		MaxClockSkew:      5 * time.Minute,
		MaxLandingAge:     24 * time.Hour,
		MaxBatch:          1000,
		MaxInFlight:       128,
		MaxHeaderBytes:    16 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		BaiduH5URL:        baidu.DefaultH5URL,
		MaxIssuing:        16,
		IssueRate:         20,
		FailedTokenBurst:  10,
		FailedTokenEvery:  6 * time.Second,
		IssueBurst:        50,
		VendorTimeout:     15 * time.Second,
	}
}

// Validate reports the first setting that cannot work: a missing secret,
// a limit or duration that is not positive, a redirect or landing setting
// that is not a URL, issuing without what it needs.
func (c Config) Validate() error {
	for _, step := range []func() error{c.validateSecrets, c.validateLimits, c.validateDurations, c.validateRedirects, c.validateIssuing} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) validateSecrets() error {
	if len(c.MegviiSecrets) == 0 {
		return errors.New("no Megvii API secret to verify callbacks with (FACEHARVEST_MEGVII_API_SECRET)")
	}
	if len(c.BearerTokens) == 0 {
		return errors.New("no bearer token for the token API (FACEHARVEST_INGEST_TOKENS)")
	}
	_, err := newLandingSigner(c.PublicURL, c.LandingKeys)
	return err
}

// positive names a setting that must be above 0 by its flag.
type positive struct {
	flag string
	ok   bool
}

func (c Config) validateLimits() error {
	return allPositive([]positive{
		{"--max-body-bytes", c.MaxBodyBytes > 0}, {"--max-callback-bytes", c.MaxCallbackBytes > 0}, {"--max-connections", c.MaxConnections > 0},
		{"--max-batch", c.MaxBatch > 0}, {"--max-inflight", c.MaxInFlight > 0}, {"--max-header-bytes", c.MaxHeaderBytes > 0},
		{"--max-issuing", c.MaxIssuing > 0}, {"--issue-rate", c.IssueRate > 0}, {"--issue-burst", c.IssueBurst > 0},
		{"--failed-token-burst", c.FailedTokenBurst > 0},
	})
}

// allPositive refuses the first setting that is not.
func allPositive(ps []positive) error {
	for _, p := range ps {
		if !p.ok {
			return fmt.Errorf("%s must be positive", p.flag)
		}
	}
	return nil
}

func (c Config) validateDurations() error {
	if err := allPositive([]positive{
		{"--idle-timeout", c.IdleTimeout > 0}, {"--publish-timeout", c.PublishTimeout > 0}, {"--retry-after", c.RetryAfter > 0},
		{"--max-publish-wait", c.MaxPublishWait > 0}, {"--max-token-age", c.MaxTokenAge > 0}, {"--max-clock-skew", c.MaxClockSkew > 0},
		{"--max-landing-age", c.MaxLandingAge > 0}, {"--read-header-timeout", c.ReadHeaderTimeout > 0}, {"--read-timeout", c.ReadTimeout > 0},
		{"--failed-token-every", c.FailedTokenEvery > 0}, {"--vendor-timeout", c.VendorTimeout > 0},
	}); err != nil {
		return err
	}
	if c.MaxPublishWait >= c.PublishTimeout {
		return fmt.Errorf("--max-publish-wait (%s) must be below --publish-timeout (%s): a publish never waits longer", c.MaxPublishWait, c.PublishTimeout)
	}
	return nil
}

func (c Config) validateRedirects() error {
	for _, u := range []string{c.BaiduSuccessRedirect, c.BaiduFailureRedirect} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "/") {
			return fmt.Errorf("redirect target %q: want an absolute http(s) URL or a path", u)
		}
	}
	return nil
}

// validateIssuing checks what the issuing routes need, when an issuer is
// configured: the landing URLs (signed with a landing key, under the
// public URL, on a port Megvii calls), the idempotency state, the H5 page.
func (c Config) validateIssuing() error {
	if c.Megvii == nil && c.Baidu == nil {
		return nil
	}
	if c.PublicURL == "" || len(c.LandingKeys) == 0 {
		return errors.New("issuing tokens needs --public-url and a landing key (FACEHARVEST_LANDING_KEY): the callback and landing URLs start with it")
	}
	if c.Idempotency == nil {
		return errors.New("issuing tokens needs the idempotency state")
	}
	if c.Megvii != nil {
		if err := megviiNotifyPort(strings.TrimRight(c.PublicURL, "/")); err != nil {
			return err
		}
	}
	if u, err := url.Parse(c.BaiduH5URL); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("the Baidu H5 URL %q: want an absolute http(s) URL", c.BaiduH5URL)
	}
	return nil
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
