package harvester

import (
	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the harvester's Prometheus metrics.
type Metrics struct {
	calls            *prometheus.CounterVec
	callDuration     *prometheus.HistogramVec
	pending          *prometheus.GaugeVec
	due              *prometheus.GaugeVec
	dueDeadline      *prometheus.GaugeVec
	dueWithinHour    *prometheus.GaugeVec
	limit            *prometheus.GaugeVec
	paused           *prometheus.GaugeVec
	accountFaults    *prometheus.CounterVec
	terminals        *prometheus.CounterVec
	windowLeft       *prometheus.HistogramVec
	deadlineMisses   *prometheus.CounterVec
	lateEvents       *prometheus.CounterVec
	events           *prometheus.CounterVec
	deadLetters      *prometheus.CounterVec
	stateWrites      prometheus.Counter
	stateWriteErrors prometheus.Counter
	publishErrors    prometheus.Counter
	bodiesStored     *prometheus.CounterVec
	bodyStoreErrors  prometheus.Counter
	restoreSeconds   prometheus.Histogram
	restored         prometheus.Counter
	intentsResolved  *prometheus.CounterVec
	markersDeleted   prometheus.Counter
	lag              *prometheus.GaugeVec

	unregistered          prometheus.Gauge
	unregisteredRefused   prometheus.Counter
	unregisteredDiscarded prometheus.Counter
	deadLetterErrors      prometheus.Counter

	alreadyArchived    *prometheus.CounterVec
	indexCheckFailures *prometheus.CounterVec
	foreignRefused     *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg (a private registry when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	vl := []string{"vendor"}
	m := &Metrics{
		lag: bus.NewLagGauge(reg, "harvester"),
		calls: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_calls_total",
			Help: "Vendor calls, by vendor, endpoint and outcome (ok or the error class)."}, []string{"vendor", "endpoint", "outcome"}),
		callDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "faceharvest_harvester_call_duration_seconds",
			Help: "Vendor call latency.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"vendor", "endpoint"}),
		pending: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_harvester_pending_verifications",
			Help: "Verifications waiting for their harvest, by vendor."}, vl),
		due: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_harvester_due_verifications",
			Help: "Verifications due now and waiting for a call slot, by vendor."}, vl),
		dueDeadline: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_harvester_due_deadline_earliest_timestamp_seconds",
			Help: "Unix time of the earliest deadline among due verifications waiting for a call slot, by vendor; absent while none waits."}, vl),
		dueWithinHour: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_harvester_due_within_hour_verifications",
			Help: "Due verifications waiting for a call slot whose window closes within the next hour, by vendor."}, vl),
		limit: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_harvester_adaptive_concurrency_limit",
			Help: "Current adaptive concurrency limit, by vendor."}, vl),
		paused: f.NewGaugeVec(prometheus.GaugeOpts{Name: "faceharvest_harvester_vendor_paused",
			Help: "1 while calls to the vendor are paused after a credential, authorization or quota fault."}, vl),
		accountFaults: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_account_faults_total",
			Help: "Credential, authorization and quota faults, by vendor: these need a person."}, vl),
		terminals: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_terminals_total",
			Help: "Verifications closed, by vendor and outcome."}, []string{"vendor", "outcome"}),
		windowLeft: f.NewHistogramVec(prometheus.HistogramOpts{Name: "faceharvest_harvester_window_left_seconds",
			Help:    "How much of the vendor's window was left when a verification was harvested.",
			Buckets: []float64{60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 72 * 3600}}, vl),
		deadlineMisses: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_deadline_misses_total",
			Help: "Verifications whose window closed before they could be harvested, by vendor."}, vl),
		lateEvents: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_late_events_total",
			Help: "Events for verifications already closed (ignored), by vendor."}, vl),
		events: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_events_total",
			Help: "Events consumed, by type."}, []string{"type"}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_dead_letters_total",
			Help: "Undecodable events sent to the dead-letter topic, by reason."}, []string{"reason"}),
		stateWrites: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_state_writes_total",
			Help: "State records acknowledged by the state topic."}),
		stateWriteErrors: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_state_write_errors_total",
			Help: "State writes that failed and were retried."}),
		publishErrors: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_raw_publish_errors_total",
			Help: "Raw-topic publishes that failed and were retried."}),
		bodiesStored: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_answers_stored_total",
			Help: "Vendor answers stored in the object store before their publication (the claim check), by vendor and how they are published: reference (the raw message carries only the reference) or inline (small enough to travel inline too)."}, []string{"vendor", "published"}),
		bodyStoreErrors: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_answer_store_errors_total",
			Help: "Writes of vendor answers to the object store that failed and were retried (the answer's publication waits)."}),
		restoreSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "faceharvest_harvester_restore_duration_seconds",
			Help: "Time to restore a partition's state.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		restored: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_restored_verifications_total",
			Help: "Pending verifications restored from the state topic."}),
		intentsResolved: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_intents_resolved_total",
			Help: "One-shot calls found in flight at restore, by how they were resolved (terminal; recorded: its answer was on the raw topic; stored: its answer was in the object store but never published, and is published now; unrecorded)."}, []string{"resolution"}),
		unregistered: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_harvester_unregistered_verifications",
			Help: "Baidu verifications known only from a landing, waiting for their token registration: nothing is called for them until it arrives."}),
		unregisteredRefused: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_unregistered_refused_events_total",
			Help: "Landings for unregistered Baidu tokens dropped because --max-unregistered verifications were already waiting."}),
		unregisteredDiscarded: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_unregistered_discarded_total",
			Help: "Verifications known only from a landing deleted without a call or a terminal: no registration arrived within Baidu's results retention."}),
		deadLetterErrors: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_dead_letter_write_errors_total",
			Help: "Dead-letter writes that failed and were retried."}),
		alreadyArchived: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_events_already_archived_total",
			Help: "Events for verifications the harvester no longer knew (closed longer ago than --closed-retention) that the evidence index holds: ignored, nothing called, by vendor."}, vl),
		indexCheckFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_index_check_failures_total",
			Help: "Events for verifications the harvester did not know applied without the evidence-index check because the object store did not answer, by vendor (a harvest is never skipped for it)."}, vl),
		foreignRefused: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_harvester_foreign_events_refused_total",
			Help: "Token registrations and Baidu landings of another caller than the verification's owner (its first registration's): ignored, by event type."}, []string{"type"}),
		markersDeleted: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_harvester_closed_markers_deleted_total",
			Help: "Closed-verification markers deleted from the state topic after the closed retention."}),
	}
	m.startAtZero()
	return m
}

// The bounded label values, each combination exported at 0 from the start:
// a series that appears only with its first increment hides that increment
// from increase() and rate(), so a pod's first deadline miss would not page.
var (
	vendors = []contract.Vendor{contract.Megvii, contract.Baidu}
	// callEndpoints are the endpoints the schedule calls, by vendor.
	callEndpoints = map[contract.Vendor][]string{
		contract.Megvii: {megvii.EndpointGetResult},
		contract.Baidu:  {baidu.EndpointGetAll, baidu.EndpointDetail, baidu.EndpointMedia},
	}
	terminalOutcomes = []string{contract.OutcomeHarvested, contract.OutcomeExpired, contract.OutcomeNotFound,
		contract.OutcomeNotVerified, contract.OutcomeLost, contract.OutcomeFailed}
	eventTypes = []string{contract.TypeTokenRegistered, contract.TypeMegviiCallback, contract.TypeBaiduCompletion}
	// deadLetterReasons are decodeEvent's labels.
	deadLetterReasons = []string{"bad_envelope", "unknown_type", "bad_value", "bad_key"}
	intentResolutions = []string{"terminal", "recorded", "stored", "unrecorded"}
)

// callOutcomes is "ok" and every error class a call can end with.
func callOutcomes() []string {
	out := []string{"ok"}
	for c := vendorerr.NotFound; c <= vendorerr.VendorFault; c++ {
		out = append(out, c.String())
	}
	return out
}

func (m *Metrics) startAtZero() {
	outcomes := callOutcomes()
	for _, vv := range vendors {
		v := string(vv)
		for _, ep := range callEndpoints[vv] {
			for _, o := range outcomes {
				m.calls.WithLabelValues(v, ep, o)
			}
			m.callDuration.WithLabelValues(v, ep)
		}
		for _, g := range []*prometheus.GaugeVec{m.pending, m.due, m.dueWithinHour, m.limit, m.paused} {
			g.WithLabelValues(v)
		}
		for _, c := range []*prometheus.CounterVec{m.accountFaults, m.deadlineMisses, m.lateEvents, m.alreadyArchived, m.indexCheckFailures} {
			c.WithLabelValues(v)
		}
		for _, o := range terminalOutcomes {
			m.terminals.WithLabelValues(v, o)
		}
		m.windowLeft.WithLabelValues(v)
	}
	for _, t := range eventTypes {
		m.events.WithLabelValues(t)
	}
	for _, t := range []string{contract.TypeTokenRegistered, contract.TypeBaiduCompletion} { // the types State.Foreign refuses
		m.foreignRefused.WithLabelValues(t)
	}
	for _, r := range deadLetterReasons {
		m.deadLetters.WithLabelValues(r)
	}
	for _, r := range intentResolutions {
		m.intentsResolved.WithLabelValues(r)
	}
}
