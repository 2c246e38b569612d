package harvester

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// series gathers reg into "name{label=value,...}" → value, histograms by
// their sample count.
func series(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(ls)
			k := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.Counter != nil:
				out[k] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[k] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[k] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// A counter that appears only on its first increment makes increase() see
// nothing of that increment: every bounded label combination exists at 0
// from the start, so a pod's first deadline miss pages.
func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	got := series(t, reg)
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
	var missing []string
	for _, k := range want {
		v, ok := got[k]
		if !ok {
			missing = append(missing, k)
		} else if v != 0 {
			t.Errorf("%s = %v at start, want 0", k, v)
		}
	}
	if len(missing) > 0 {
		t.Errorf("not exported until their first increment:\n  %s", strings.Join(missing, "\n  "))
	}
	// Bounded: vendors × endpoints × outcomes, nothing more.
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "faceharvest_harvester_calls_total{") {
			n++
		}
	}
	if n != (1+3)*8 {
		t.Errorf("%d call series at start, want (1 Megvii + 3 Baidu endpoints) × 8 outcomes", n)
	}
}
