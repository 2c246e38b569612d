package ingest

import (
	"strings"
	"testing"
)

// TestRefusalLogsLimited: each refusal of a stranger's request is counted
// in the metrics, but its log lines are limited (a burst, then a few a
// second, with how many were not logged), so a flood does not flood the
// logs.
func TestRefusalLogsLimited(t *testing.T) {
	f := newFixture(t, nil)
	for range 1000 {
		if r := f.do(t, "POST", RouteMegviiCallback, "application/x-www-form-urlencoded", []byte("data=%7B%7D&sign=forged"), nil); r.code != 401 {
			t.Fatalf("a forged callback: %d", r.code)
		}
	}
	n := strings.Count(f.logs.String(), `"msg":"request refused"`)
	if n == 0 || n > refusalLogBurst+1 {
		t.Fatalf("%d refusal log lines for 1000 refusals, want 1 to %d", n, refusalLogBurst+1)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_signature_failures_total", map[string]string{"reason": "mismatch"}); got != 1000 {
		t.Fatalf("signature failures %v, want 1000", got)
	}
}
