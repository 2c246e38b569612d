package archiver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// startRunner runs a as a Runner of group on brokers until the test ends.
func startRunner(t *testing.T, brokers []string, a *Archiver, group string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rc := testRunConfig(brokers, group)
	rc.CommitInterval, rc.HoldLimit = 20*time.Millisecond, time.Hour
	r, err := NewRunner(ctx, rc, a)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// endOffset is the high watermark of partition 0 of topic: how many
// messages were ever written to it.
func endOffset(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	_, end, err := bus.PartitionBounds(context.Background(), bus.Plain(brokers...), topic, 0)
	if err != nil {
		t.Fatalf("offsets of %s: %v", topic, err)
	}
	return end
}

// publishedRecords reads the results topic to its end until n values with
// ce_id id are there, for 3 minutes at most, and returns them in order.
func publishedRecords(t *testing.T, brokers []string, id string, n int) [][]byte {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var out [][]byte
		readTopic(t, brokers, resultsTopic, nil, func(m contract.Message) {
			if v, _ := m.Header(contract.HeaderID); string(v) == id {
				out = append(out, m.Value)
			}
		})
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records %s published", len(out), n, id)
		}
	}
}

// TestUnusableSpoolDirectoryIsRetried: a media link whose spool file
// cannot be created (here: the spool directory is missing) is retried with
// back-off, counted and fails readiness while it lasts; its answer is not
// dropped and no record is published until the directory is repaired, and
// then the record is complete.
func TestUnusableSpoolDirectoryIsRetried(t *testing.T) {
	brokers, store, w := holdWorld(t)
	srv, _ := mediaServer(t)
	spool := filepath.Join(t.TempDir(), "spool") // not created yet
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Store, cfg.HTTP, cfg.SpoolDir, cfg.RetryMin, cfg.RetryMax, cfg.Metrics = store, srv.Client(), spool, time.Millisecond, 5*time.Millisecond, NewMetrics(reg)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := "spool-1"
	body := mustJSON(t, map[string]any{"success": true, "log_id": "1", "result": map[string]any{
		"video": []string{srv.URL + "/v1/aa.mp4"}, "images": []string{srv.URL + "/v1/a.jpg"}}})
	resp := response(contract.Baidu, id, "result/media/query", body)
	term := terminal(contract.Baidu, id, contract.OutcomeHarvested)
	term.Responses = []string{contract.ResponseID(contract.Baidu, id, "result/media/query", 0)}
	produce(t, w, resp.Message("/harvester"), term.Message("/harvester"))
	startRunner(t, brokers, a, "spool")

	failures := func() float64 { return metricValue(t, reg, "faceharvest_archiver_spool_failures_total") }
	waitFor(t, func() bool {
		if n := endOffset(t, brokers, resultsTopic); n > 0 {
			rec := readRecord(t, brokers, contract.RecordID(contract.Baidu, id))
			t.Fatalf("a record was published while the spool directory was missing: problems %q", rec.Problems)
		}
		return failures() >= 3
	}, "spool failures counted")
	// The answer cannot have been archived (its video needs a spool file),
	// so its terminal cannot have been handled: the worker is still on it.
	if err := a.Ready(context.Background()); err == nil {
		t.Error("ready while media cannot be spooled")
	} else {
		t.Logf("readiness: %v", err)
	}
	if n := endOffset(t, brokers, resultsTopic); n != 0 {
		t.Fatalf("%d records published while the spool directory was missing", n)
	}
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	recs := publishedRecords(t, brokers, contract.RecordID(contract.Baidu, id), 1)
	var rec contract.Record
	if err := json.Unmarshal(recs[0], &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Outcome != contract.OutcomeHarvested || len(rec.Problems) != 0 || len(rec.Media) != 2 ||
		rec.Media[0].Status != contract.MediaStored || rec.Media[1].Status != contract.MediaStored {
		t.Fatalf("record after the repair: problems %q media %+v", rec.Problems, rec.Media)
	}
	if err := a.Ready(context.Background()); err != nil {
		t.Errorf("still not ready after the repair: %v", err)
	}
	if n := metricValue(t, reg, "faceharvest_archiver_spool_failing"); n != 0 {
		t.Errorf("the failing gauge says %v after the repair", n)
	}
	t.Logf("%v spool failures counted before the repair", failures())
}

// metricValue sums the series of the metric name on reg (0 when it has none).
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
