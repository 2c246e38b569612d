package harvester

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/metricstest"
)

// A counter that appears only on its first increment makes increase() see
// nothing of that increment: every bounded label combination exists at 0
// from the start, so a pod's first deadline miss pages.
func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	want := []string{
		"faceharvest_harvester_deadline_misses_total{vendor=megvii}",
		"faceharvest_harvester_deadline_misses_total{vendor=baidu}",
		"faceharvest_harvester_terminals_total{outcome=lost,vendor=megvii}",
		"faceharvest_harvester_terminals_total{outcome=failed,vendor=baidu}",
		"faceharvest_harvester_terminals_total{outcome=expired,vendor=baidu}",
		"faceharvest_harvester_account_faults_total{vendor=baidu}",
		"faceharvest_harvester_dead_letters_total{reason=bad_envelope}",
		"faceharvest_harvester_dead_letters_total{reason=bad_key}",
		"faceharvest_harvester_calls_total{endpoint=get_result,outcome=ok,vendor=megvii}",
		"faceharvest_harvester_calls_total{endpoint=result/media/query,outcome=destroyed,vendor=baidu}",
		"faceharvest_harvester_call_duration_seconds{endpoint=result/getall,vendor=baidu}",
		"faceharvest_harvester_window_left_seconds{vendor=megvii}",
		"faceharvest_harvester_vendor_paused{vendor=megvii}",
		"faceharvest_harvester_due_verifications{vendor=baidu}",
		"faceharvest_harvester_events_total{type=com.faceharvest.megvii.callback.v1}",
		"faceharvest_harvester_intents_resolved_total{resolution=unrecorded}",
		"faceharvest_harvester_raw_publish_errors_total{}",
	}
	metricstest.AtZero(t, reg, want)
	// Bounded: vendors × endpoints × outcomes, nothing more.
	n := 0
	for k := range metricstest.Series(t, reg) {
		if strings.HasPrefix(k, "faceharvest_harvester_calls_total{") {
			n++
		}
	}
	if n != (1+3)*8 {
		t.Errorf("%d call series at start, want (1 Megvii + 3 Baidu endpoints) × 8 outcomes", n)
	}
}
