package archiver

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/metricstest"
)

// Every bounded label combination exists at 0 from the start: a series born
// with its first increment hides that increment from increase(), so the first
// expired Baidu video after a restart would not page.
func TestMetricsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
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
		"faceharvest_archiver_index_write_failures_total{index=by_biz_no}",
		"faceharvest_archiver_index_write_failures_total{index=by_id}",
		"faceharvest_archiver_record_delay_seconds{}",
	}
	metricstest.AtZero(t, reg, want)
}
