package ledger

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/faceharvest/faceharvest/pkg/bus"
)

// Metrics are the integrator's.
type Metrics struct {
	leaves, repeats, checkpoints, appendFailures prometheus.Counter
	entryErrors                                  *prometheus.CounterVec
	size, checkpointTime                         prometheus.Gauge
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
	return m
}
