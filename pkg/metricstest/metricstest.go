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

// Sum adds up the series of the metric name whose labels include every
// "label=value" of match (all its series when match is empty).
func Sum(t testing.TB, reg prometheus.Gatherer, name string, match ...string) float64 {
	t.Helper()
	sum := 0.0
	for k, v := range Series(t, reg) {
		ls, ok := strings.CutPrefix(k, name+"{")
		if !ok {
			continue
		}
		have := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSuffix(ls, "}"), ",") {
			have[l] = true
		}
		all := true
		for _, m := range match {
			all = all && have[m]
		}
		if all {
			sum += v
		}
	}
	return sum
}
