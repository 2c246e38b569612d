package ledger

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/faceharvest/faceharvest/pkg/bus"
)

// Metrics are the integrator's.
type Metrics struct {
	leaves, repeats, checkpoints, appendFailures prometheus.Counter
	timestamps, staleCheckpoints                 prometheus.Counter
	entryErrors, timestampFailures               *prometheus.CounterVec
	size, checkpointTime, timestampTime          prometheus.Gauge
	delay, batchSeconds                          prometheus.Histogram
	lag                                          *prometheus.GaugeVec
}

// NewMetrics registers the integrator's metrics on reg (a private registry
// when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	m := &Metrics{
		leaves: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ledger_leaves_total",
			Help: "Index entries appended to the evidence log as new leaves."}),
		repeats: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ledger_repeats_total",
			Help: "Leaf messages for entries already in the log (an archiver re-processed a terminal, or a batch was redone after a crash): skipped."}),
		checkpoints: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ledger_checkpoints_total",
			Help: "Signed checkpoints written to the bucket (and published on the checkpoints topic)."}),
		appendFailures: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ledger_append_failures_total",
			Help: "Failed tries to extend the log (store errors, a batch claimed by another integrator); each is retried, the leaves' offsets stay uncommitted."}),
		entryErrors: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ledger_entry_errors_total",
			Help: "Leaf messages whose index entry could not be used, by reason: missing (not in the store), unreadable (not an index entry, or too large), changed (its SHA-256 differs from the one the archiver sent: the stored bytes are the leaf), bad_message (not a leaf message)."}, []string{"reason"}),
		staleCheckpoints: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ledger_stale_checkpoints_total",
			Help: "Checkpoints not stored because the stored one is of a larger tree (a stale integrator finishing an old batch late): refused by the compare-and-swap on the checkpoint object."}),
		timestamps: f.NewCounter(prometheus.CounterOpts{Name: "faceharvest_ledger_timestamps_total",
			Help: "Checkpoints time-stamped by the RFC 3161 time-stamping authority (--tsa-url), their token stored."}),
		timestampFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_ledger_timestamp_failures_total",
			Help: "Checkpoints published without a time-stamp token, by reason: tsa (unreachable, an error or an invalid answer), untrusted (the token does not chain to --tsa-cert), store (the token could not be stored). The next checkpoint is stamped in its turn."}, []string{"reason"}),
		timestampTime: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_ledger_last_timestamp_seconds",
			Help: "When the latest checkpoint was time-stamped and its token stored (Unix time)."}),
		size: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_ledger_tree_size",
			Help: "Leaves in the log as of the latest checkpoint."}),
		checkpointTime: f.NewGauge(prometheus.GaugeOpts{Name: "faceharvest_ledger_checkpoint_timestamp_seconds",
			Help: "When the latest checkpoint was written (Unix time)."}),
		delay: f.NewHistogram(prometheus.HistogramOpts{Name: "faceharvest_ledger_leaf_delay_seconds",
			Help:    "From an index entry's final write (the leaf message's indexed_at) to the checkpoint that includes it.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		batchSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "faceharvest_ledger_batch_seconds",
			Help:    "Time to integrate one batch: read its entries, claim, write tiles, markers and the checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		lag: bus.NewLagGauge(reg, "ledger"),
	}
	for _, r := range []string{"missing", "unreadable", "changed", "bad_message"} {
		m.entryErrors.WithLabelValues(r) // exported at 0 from the start
	}
	for _, r := range []string{"tsa", "untrusted", "store"} {
		m.timestampFailures.WithLabelValues(r)
	}
	return m
}
