package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSeriesAtZeroAndSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"vendor", "outcome"})
	reg.MustRegister(c)
	c.WithLabelValues("megvii", "ok").Add(2)
	c.WithLabelValues("baidu", "ok").Add(3)
	c.WithLabelValues("baidu", "lost")
	AtZero(t, reg, []string{"x_total{outcome=lost,vendor=baidu}"})
	for _, tc := range []struct {
		match []string
		want  float64
	}{{nil, 5}, {[]string{"outcome=ok"}, 5}, {[]string{"vendor=baidu"}, 3}, {[]string{"vendor=baidu", "outcome=lost"}, 0}, {[]string{"vendor=none"}, 0}} {
		if got := Sum(t, reg, "x_total", tc.match...); got != tc.want {
			t.Errorf("Sum(%v) = %v, want %v", tc.match, got, tc.want)
		}
	}
	if got := Sum(t, reg, "x", "vendor=baidu"); got != 0 {
		t.Errorf("a name's prefix matched: %v", got)
	}
}
