package ingest

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

type metrics struct {
	requests    *prometheus.CounterVec
	sigFail     *prometheus.CounterVec
	landingFail *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	shed        *prometheus.CounterVec
	published   *prometheus.CounterVec
	publishDur  *prometheus.HistogramVec
	batch       prometheus.Histogram
	inflight    prometheus.Gauge
	panics      prometheus.Counter
	// Issuing.
	issued        *prometheus.CounterVec
	vendorErrors  *prometheus.CounterVec
	replays       *prometheus.CounterVec
	unregistered  *prometheus.CounterVec
	megviiReturns prometheus.Counter
	// Children looked up once: every request would otherwise hash its
	// label values again.
	publishOK       prometheus.Observer
	publishedByType map[string]prometheus.Counter
}

// The bounded label values, each combination exported at 0 from the start:
// a series that appears only with its first increment hides that increment
// from increase() and rate(), so a burst of 401s right after a rollout would
// not page.
var (
	metricRoutes = []string{RouteMegviiCallback, RouteMegviiReturn, RouteBaiduSuccess, RouteBaiduFailure, RouteTokens, RouteMegviiTokens, RouteBaiduTokens, "other"}
	// answerCodes are the status codes the handlers answer with.
	answerCodes = []int{http.StatusOK, http.StatusAccepted, http.StatusSeeOther, http.StatusBadRequest, http.StatusUnauthorized,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusUnprocessableEntity, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
	// rejectionReasons are the reqError reasons, and overloaded.
	rejectionReasons = []string{"overloaded", "broker", "signature", "unauthorized", "malformed", "invalid", "media_type",
		"too_large", "read", "method", "route", "not_configured", "vendor_rate_limited", "vendor_refused", "vendor_fault",
		"idempotency_busy", "idempotency_mismatch", "foreign_caller", "caller_rate_limited", "too_many_failures"}
	issuingVendors   = []string{"megvii", "baidu"}
	vendorClasses    = []string{"rate_limited", "vendor_fault", "caller_bug", "account", "not_verified", "not_found", "destroyed", "unknown"}
	signatureReasons = []string{"missing", "mismatch"}
	landingReasons   = []string{"missing", "malformed_signature", "mismatch", "not_configured", "stale"}
	eventTypes       = []string{contract.TypeMegviiCallback, contract.TypeBaiduCompletion, contract.TypeTokenRegistered}
)

func newMetrics(reg prometheus.Registerer) metrics {
	f := promauto.With(reg)
	m := metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_requests_total",
			Help: "HTTP requests answered, by route and status code."}, []string{"route", "code"}),
		sigFail: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_signature_failures_total",
			Help: "Megvii callbacks refused for their signature, by reason (missing, mismatch)."}, []string{"reason"}),
		landingFail: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_landing_signature_failures_total",
			Help: "Baidu landings refused (401) for their signature, by reason (missing, malformed_signature, mismatch, not_configured); nothing was published."}, []string{"reason"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_rejections_total",
			Help: "Requests refused before publishing, by route and reason."}, []string{"route", "reason"}),
		shed: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_shed_total",
			Help: "Requests answered 503 with Retry-After before their body was read, nothing taken, by route and reason (inflight: --max-inflight reached; publish_wait: the oldest publish waited beyond --max-publish-wait; issuing: --max-issuing reached)."}, []string{"route", "reason"}),
		published: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_events_published_total",
			Help: "Events acknowledged by the broker, by event type."}, []string{"type"}),
		publishDur: f.NewHistogramVec(prometheus.HistogramOpts{Name: "faceharvest_ingest_publish_duration_seconds",
			Help: "Time from publish to broker acknowledgement (acks=all), by outcome.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"outcome"}),
		batch: f.NewHistogram(prometheus.HistogramOpts{Name: "faceharvest_ingest_registration_batch_size",
			Help: "Token registrations per request.", Buckets: prometheus.ExponentialBuckets(1, 4, 6)}),
		inflight: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_ingest_inflight_requests",
			Help: "Requests being served."}),
		panics: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ingest_panics_total",
			Help: "Handler panics recovered into 500 answers."}),
	}
	m.issued = f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_tokens_issued_total",
		Help: "Tokens issued through POST /v1/{vendor}/tokens and answered, each registered first (acks=all), by vendor."}, []string{"vendor"})
	m.vendorErrors = f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_issue_vendor_errors_total",
		Help: "Vendor calls of token issuing that failed, by vendor and class (rate_limited: answered 429; caller_bug, not_verified: 400; the rest: 502)."}, []string{"vendor", "class"})
	m.replays = f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_idempotent_replays_total",
		Help: "Issuing requests answered from their Idempotency-Key's stored answer, without a vendor call, by vendor."}, []string{"vendor"})
	m.unregistered = f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ingest_issued_unregistered_total",
		Help: "Tokens the vendor issued whose registration was not acknowledged in time: not given out (answered 503), by vendor."}, []string{"vendor"})
	m.megviiReturns = f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ingest_megvii_return_landings_total",
		Help: "Megvii return_url landings recorded (vendor-signed data, signed landing URL) and redirected."})
	for _, v := range issuingVendors {
		m.issued.WithLabelValues(v)
		m.replays.WithLabelValues(v)
		m.unregistered.WithLabelValues(v)
		for _, c := range vendorClasses {
			m.vendorErrors.WithLabelValues(v, c)
		}
	}
	m.publishOK = m.publishDur.WithLabelValues("ok")
	m.publishDur.WithLabelValues("error")
	m.publishedByType = map[string]prometheus.Counter{}
	for _, t := range eventTypes {
		m.publishedByType[t] = m.published.WithLabelValues(t)
	}
	for _, r := range metricRoutes {
		for _, c := range answerCodes {
			m.requests.WithLabelValues(r, strconv.Itoa(c))
		}
		for _, why := range rejectionReasons {
			m.rejected.WithLabelValues(r, why)
		}
		for _, why := range shedReasons {
			m.shed.WithLabelValues(r, why)
		}
	}
	for _, why := range signatureReasons {
		m.sigFail.WithLabelValues(why)
	}
	for _, why := range landingReasons {
		m.landingFail.WithLabelValues(why)
	}
	return m
}
