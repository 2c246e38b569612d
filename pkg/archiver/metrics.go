package archiver

import (
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the archiver's Prometheus metrics.
type Metrics struct {
	objects            *prometheus.CounterVec
	bytes              *prometheus.CounterVec
	existing           *prometheus.CounterVec
	media              *prometheus.CounterVec
	downloads          *prometheus.CounterVec
	refused            *prometheus.CounterVec
	records            *prometheus.CounterVec
	deadLetters        *prometheus.CounterVec
	responses          *prometheus.CounterVec
	rawAnswers         *prometheus.CounterVec
	rawAnswerErrors    *prometheus.CounterVec
	storeRetry         prometheus.Counter
	storeDown          prometheus.Gauge
	publishErr         prometheus.Counter
	spoolFailures      prometheus.Counter
	spoolFailing       prometheus.Gauge
	replays            *prometheus.CounterVec
	indexErrors        prometheus.Counter
	indexWriteFailures *prometheus.CounterVec
	ledgerFailures     prometheus.Counter
	unfinished         prometheus.Counter
	recordLag          prometheus.Histogram
	lag                *prometheus.GaugeVec
}

// NewMetrics registers the metrics on reg (a private registry when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	m := &Metrics{
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
		rawAnswers: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_raw_answers_total",
			Help: "Vendor answers read from the raw topic, by where their bytes came from: inline (in the message) or store (by reference, read from the object store)."}, []string{"from"}),
		rawAnswerErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_raw_answer_errors_total",
			Help: "Vendor answers whose bytes could not be had by reference, by reason: missing (the object is not in the store: retried until it is, the partition waits), mismatch (the bytes differ from the reference's size or SHA-256: dead-lettered as raw_mismatch), too_large (dead-lettered as raw_mismatch)."}, []string{"reason"}),
		responses: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_responses_total",
			Help: "Vendor responses archived, by vendor and endpoint."}, []string{"vendor", "endpoint"}),
		storeRetry: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_store_retries_total",
			Help: "Store operations retried after a failure (the store is down or failing)."}),
		storeDown: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_archiver_store_failing",
			Help: "1 while store operations are failing and being retried."}),
		spoolFailures: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_spool_failures_total",
			Help: "Media downloads that failed on this machine (the spool file could not be created or read: missing directory, permissions, no descriptors left) and were retried."}),
		spoolFailing: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_archiver_spool_failing",
			Help: "Media items waiting for the spool directory to work again (readiness fails while it is above 0)."}),
		replays: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_replays_total",
			Help: "Terminals of a verification that already had a record (a callback or landing replayed after the harvester forgot it): the stored record was published again, the new evidence kept, by vendor."}, []string{"vendor"}),
		indexErrors: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_index_errors_total",
			Help: "Index entries that could not be used (not an index entry) or named a record that is missing (rebuilt from its evidence document)."}),
		indexWriteFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_archiver_index_write_failures_total",
			Help: "Failed tries to write an index entry, by index (by_id, by_biz_no); each is retried, and the record waits for its entries."}, []string{"index"}),
		ledgerFailures: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_ledger_append_failures_total",
			Help: "Failed tries to append a final index entry to the ledger's leaves topic; each is retried, and the record waits for its leaf."}),
		unfinished: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_unfinished_total",
			Help: "Raw messages left unfinished by an error that is not a shutdown (an evidence document or stored record that cannot be read): the partition's commits stop behind them."}),
		publishErr: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_archiver_publish_errors_total",
			Help: "Failed publishes to the results or dead-letter topic (retried)."}),
		recordLag: f.NewHistogram(prometheus.HistogramOpts{Name: "faceharvest_archiver_record_delay_seconds",
			Help:    "From the harvest's terminal decision to the record's publication.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14)}),
	}
	m.startAtZero()
	return m
}

// The bounded label values, each combination exported at 0 from the start:
// a series that appears only with its first increment hides that increment
// from increase() and rate(), so the first expired video after a restart
// would not page.
var (
	vendors      = []contract.Vendor{contract.Megvii, contract.Baidu}
	objectKinds  = []string{"image", "video", "raw_response", "response", "evidence", "record", "index"}
	mediaStatus  = []string{contract.MediaStored, contract.MediaExpired, contract.MediaRejected, contract.MediaFailed, contract.MediaRefused}
	refusalsWhy  = []string{RefusedLoopback, RefusedPrivate, RefusedLinkLocal, RefusedMetadata, RefusedUnspecified, RefusedMulticast, RefusedCGNAT, RefusedReserved, RefusedScheme, RefusedRedirects}
	recordResult = []string{contract.OutcomeHarvested, contract.OutcomeHarvestedWithoutImages, contract.OutcomeExpired, contract.OutcomeNotFound,
		contract.OutcomeNotVerified, contract.OutcomeLost, contract.OutcomeFailed}
	// deadLetterReasons are the labels Runner.deadLetter is called with.
	deadLetterReasons = []string{"bad_envelope", "bad_response", "bad_key", "raw_mismatch", "bad_terminal", "unknown_type"}
	// rawAnswerFrom and rawAnswerWhy are the labels of rawAnswers and
	// rawAnswerErrors.
	rawAnswerFrom = []string{"inline", "store"}
	rawAnswerWhy  = []string{"missing", "mismatch", "too_large"}
	// responseEndpoints are endpointLabel's values, by vendor.
	responseEndpoints = map[contract.Vendor][]string{
		contract.Megvii: {"get_result", "callback"},
		contract.Baidu:  {"result/getall", "result/detail", "result/media/query", "result/simple", "result/stat"},
	}
)

func (m *Metrics) startAtZero() {
	for _, k := range objectKinds {
		m.objects.WithLabelValues(k)
		m.bytes.WithLabelValues(k)
		m.existing.WithLabelValues(k)
	}
	for _, s := range mediaStatus {
		m.downloads.WithLabelValues(s)
	}
	m.downloads.WithLabelValues("retry")
	for _, ix := range []string{indexIDLabel, indexBizNoLabel} {
		m.indexWriteFailures.WithLabelValues(ix)
	}
	for _, r := range refusalsWhy {
		m.refused.WithLabelValues(r)
	}
	for _, r := range deadLetterReasons {
		m.deadLetters.WithLabelValues(r)
	}
	for _, f := range rawAnswerFrom {
		m.rawAnswers.WithLabelValues(f)
	}
	for _, r := range rawAnswerWhy {
		m.rawAnswerErrors.WithLabelValues(r)
	}
	for _, vv := range vendors {
		v := string(vv)
		for _, s := range mediaStatus {
			m.media.WithLabelValues(v, s)
		}
		for _, o := range recordResult {
			m.records.WithLabelValues(v, o)
		}
		for _, ep := range responseEndpoints[vv] {
			m.responses.WithLabelValues(v, ep)
		}
		m.replays.WithLabelValues(v)
	}
}
