package archiver

import (
	"github.com/faceharvest/faceharvest/pkg/bus"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the archiver's Prometheus metrics.
type Metrics struct {
	objects     *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	existing    *prometheus.CounterVec
	media       *prometheus.CounterVec
	downloads   *prometheus.CounterVec
	refused     *prometheus.CounterVec
	records     *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	responses   *prometheus.CounterVec
	storeRetry  prometheus.Counter
	storeDown   prometheus.Gauge
	publishErr  prometheus.Counter
	recordLag   prometheus.Histogram
	lag         *prometheus.GaugeVec
}

// NewMetrics registers the metrics on reg (a private registry when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	return &Metrics{
		lag: bus.NewLagGauge(reg, "archiver"),
		objects: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_objects_stored_total",
			Help: "Objects written to the store, by kind (image, video, response, raw_response, evidence)."}, []string{"kind"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_bytes_stored_total",
			Help: "Bytes written to the store, by kind."}, []string{"kind"}),
		existing: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_objects_existing_total",
			Help: "Objects not written because their key already existed (re-processing), by kind."}, []string{"kind"}),
		media: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_media_total",
			Help: "Media items by vendor and status (stored, expired, rejected, failed, refused)."}, []string{"vendor", "status"}),
		downloads: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_downloads_total",
			Help: "Media downloads by outcome (stored, expired, rejected, failed, refused, retry)."}, []string{"outcome"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_media_refused_total",
			Help: "Media links not fetched under the media policy, by reason (loopback, private, link_local, metadata, unspecified, multicast, cgnat, reserved, scheme, redirects)."}, []string{"reason"}),
		records: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_records_published_total",
			Help: "Normalized records published, by vendor and outcome."}, []string{"vendor", "outcome"}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_dead_letters_total",
			Help: "Raw-topic messages dead-lettered, by reason."}, []string{"reason"}),
		responses: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_responses_total",
			Help: "Vendor responses archived, by vendor and endpoint."}, []string{"vendor", "endpoint"}),
		storeRetry: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_store_retries_total",
			Help: "Store operations retried after a failure (the store is down or failing)."}),
		storeDown: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_archiver_store_failing",
			Help: "1 while store operations are failing and being retried."}),
		publishErr: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_publish_errors_total",
			Help: "Failed publishes to the results or dead-letter topic (retried)."}),
		recordLag: f.NewHistogram(prometheus.HistogramOpts{Name: "faceharvest_archiver_record_delay_seconds",
			Help:    "From the harvest's terminal decision to the record's publication.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14)}),
	}
}
