package ingest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
)

// Every bounded label combination exists at 0 from the start: a series born
// with its first increment hides that increment from increase(), so a burst
// of 401s right after a rollout (a secret mounted wrong) would not page.
func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.MegviiSecrets, cfg.BearerTokens, cfg.Registry = []config.Secret{config.NewSecret("s")}, []config.Secret{config.NewSecret("t")}, reg
	if _, err := New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"faceharvest_ingest_requests_total{code=401,route=/v1/callbacks/megvii}",
		"faceharvest_ingest_requests_total{code=503,route=/v1/tokens}",
		"faceharvest_ingest_requests_total{code=500,route=/v1/callbacks/baidu/success}",
		"faceharvest_ingest_requests_total{code=200,route=/v1/callbacks/megvii}",
		"faceharvest_ingest_rejections_total{reason=broker,route=/v1/callbacks/megvii}",
		"faceharvest_ingest_rejections_total{reason=overloaded,route=/v1/tokens}",
		"faceharvest_ingest_signature_failures_total{reason=mismatch}",
		"faceharvest_ingest_landing_signature_failures_total{reason=not_configured}",
		"faceharvest_ingest_publish_duration_seconds{outcome=error}",
	}
	metricstest.AtZero(t, reg, want)
}
