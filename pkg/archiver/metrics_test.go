package archiver

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

// Every bounded label combination exists at 0 from the start: a series born
// with its first increment hides that increment from increase(), so the first
// expired Baidu video after a restart would not page.
func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	got := series(t, reg)
	want := []string{
		"faceharvest_archiver_media_total{status=expired,vendor=baidu}",
		"faceharvest_archiver_media_total{status=failed,vendor=megvii}",
		"faceharvest_archiver_downloads_total{outcome=retry}",
		"faceharvest_archiver_media_refused_total{reason=metadata}",
		"faceharvest_archiver_records_published_total{outcome=harvested_without_images,vendor=megvii}",
		"faceharvest_archiver_records_published_total{outcome=lost,vendor=baidu}",
		"faceharvest_archiver_dead_letters_total{reason=bad_terminal}",
		"faceharvest_archiver_dead_letters_total{reason=unknown_type}",
		"faceharvest_archiver_objects_stored_total{kind=evidence}",
		"faceharvest_archiver_bytes_stored_total{kind=video}",
		"faceharvest_archiver_objects_existing_total{kind=record}",
		"faceharvest_archiver_responses_total{endpoint=result/media/query,vendor=baidu}",
		"faceharvest_archiver_responses_total{endpoint=callback,vendor=megvii}",
		"faceharvest_archiver_replays_total{vendor=baidu}",
		"faceharvest_archiver_record_delay_seconds{}",
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
}
