package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// The writer's figures are counters and histograms that only grow: two
// Prometheus replicas scraping the same pod both see every batch, where an
// average since the previous scrape showed each replica half of them.
func TestWriterMetricsSurviveScrapes(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Topics: []string{"events"}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(b.Addr()), Topic: "events"})
	defer w.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(bus.NewWriterCollector(w, "ingest"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range 3 {
		msgs := make([]contract.Message, i+1) // batches of 1, 2 and 3 messages
		for j := range msgs {
			msgs[j] = contract.Message{Key: []byte("megvii:1"), Value: []byte("v")}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	first := gather(t, reg) // a first Prometheus replica scrapes
	second := gather(t, reg)
	for _, mfs := range []map[string]*dto.MetricFamily{first, second} {
		for _, name := range []string{"faceharvest_ingest_kafka_batch_messages", "faceharvest_ingest_kafka_produce_duration_seconds"} {
			mf := mfs[name]
			if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
				t.Fatalf("%s: want a histogram, got %v", name, mf)
			}
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 3 {
				t.Errorf("%s: %d samples, want one per batch (3)", name, h.GetSampleCount())
			}
			if name == "faceharvest_ingest_kafka_batch_messages" && h.GetSampleSum() != 6 {
				t.Errorf("%s: sum %v, want 6 messages", name, h.GetSampleSum())
			}
		}
		if mf := mfs["faceharvest_ingest_kafka_messages_total"]; mf == nil || mf.GetMetric()[0].GetCounter().GetValue() != 6 {
			t.Errorf("messages_total: %v, want 6", mf)
		}
		for _, gone := range []string{"faceharvest_ingest_kafka_batch_size_avg", "faceharvest_ingest_kafka_batch_size_max", "faceharvest_ingest_kafka_write_seconds_avg"} {
			if mfs[gone] != nil {
				t.Errorf("%s: an average since the previous scrape is wrong with two scrapers", gone)
			}
		}
	}
}
