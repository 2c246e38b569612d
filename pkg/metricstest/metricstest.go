// Package metricstest reads a Prometheus registry in tests: every series
// by name and labels, and the check that bounded label combinations are
// exported at 0 from the start (a series born with its first increment
// hides that increment from increase()).
package metricstest

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Series gathers reg into "name{label=value,...}" → value (labels sorted;
// histograms by their sample count).
func Series(t testing.TB, reg prometheus.Gatherer) map[string]float64 {
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

// AtZero fails t unless every series of want ("name{label=value,...}",
// labels sorted) is exported by reg with the value 0.
func AtZero(t testing.TB, reg prometheus.Gatherer, want []string) {
	t.Helper()
	got := Series(t, reg)
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
