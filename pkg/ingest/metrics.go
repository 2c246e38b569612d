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
	published   *prometheus.CounterVec
	publishDur  *prometheus.HistogramVec
	batch       prometheus.Histogram
	inflight    prometheus.Gauge
	panics      prometheus.Counter
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
	metricRoutes = []string{RouteMegviiCallback, RouteBaiduSuccess, RouteBaiduFailure, RouteTokens, "other"}
	// answerCodes are the status codes the handlers answer with.
	answerCodes = []int{http.StatusOK, http.StatusAccepted, http.StatusSeeOther, http.StatusBadRequest, http.StatusUnauthorized,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusInternalServerError, http.StatusServiceUnavailable}
	// rejectionReasons are the reqError reasons, and overloaded.
	rejectionReasons = []string{"overloaded", "broker", "signature", "unauthorized", "malformed", "invalid", "media_type",
		"too_large", "read", "method", "route"}
	signatureReasons = []string{"missing", "mismatch"}
	landingReasons   = []string{"missing", "malformed_signature", "mismatch", "not_configured"}
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
	}
	for _, why := range signatureReasons {
		m.sigFail.WithLabelValues(why)
	}
	for _, why := range landingReasons {
		m.landingFail.WithLabelValues(why)
	}
	return m
}
