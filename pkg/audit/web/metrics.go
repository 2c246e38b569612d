package web

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Routes and answer codes the request counter starts at 0 with.
var (
	routes = []string{"login", "logout", "home", "search", "verification", "identity", "media", "evidence", "bundle", "other"}
	codes  = []int{200, 303, 401, 403, 404, 429, 503}
	// mediaKinds label the bytes streamed.
	mediaKinds = []string{"image", "video", "evidence", kindBundle, "other"}
)

// kindBundle labels the bytes of evidence bundles sent.
const kindBundle = "bundle"

// Metrics are the audit page's metrics.
type Metrics struct {
	requests   *prometheus.CounterVec
	authFails  *prometheus.CounterVec
	mediaBytes *prometheus.CounterVec
}

// NewMetrics registers the page's metrics on reg, every known label
// combination at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_auditor_requests_total",
			Help: "Audit page requests answered, by route (login, logout, home, search, verification, identity, media, evidence, bundle, other) and HTTP status code."}, []string{"route", "code"}),
		authFails: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_auditor_auth_failures_total",
			Help: "Audit page requests refused for authentication or authorization, by reason: missing (no credentials), invalid_token, invalid_session, expired_session, revoked_session (its token left the token file), untrusted_proxy_header (a proxy user header from an address outside --trusted-proxy-cidrs, ignored), repeated_proxy_header (a trusted proxy's user or role header given more than once, believed in neither copy), forbidden_role (identity, an ID-card image, evidence or a bundle asked for without the identity role), bad_origin (a login, logout or bundle form sent from another origin), cross_site (a view a browser requested from another site, by Sec-Fetch-Site), too_many_failures (a token presented from an address that sent too many wrong ones lately, not checked)."}, []string{"reason"}),
		mediaBytes: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_auditor_media_bytes_total",
			Help: "Bytes of stored objects streamed to viewers, by kind (image, video, evidence, bundle: an evidence bundle, other)."}, []string{"kind"}),
	}
	for _, r := range routes {
		for _, c := range codes {
			m.requests.WithLabelValues(r, strconv.Itoa(c))
		}
	}
	for _, r := range authReasons {
		m.authFails.WithLabelValues(r)
	}
	for _, k := range mediaKinds {
		m.mediaBytes.WithLabelValues(k)
	}
	return m
}

func (m *Metrics) request(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func (m *Metrics) authFailure(reason string) { m.authFails.WithLabelValues(reason).Inc() }
