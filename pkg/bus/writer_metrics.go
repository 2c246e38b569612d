package bus

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// Buckets of the writer's histograms.
var (
	produceBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms to 16 s
	batchBuckets   = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}
)

// writerObserver records what a writer built by NewWriter does, from its
// first write on: each produce request's round trip (its transport) and each
// batch's size and fate (its Completion). Its histograms are not registered:
// WriterCollector exports them under the component's names.
type writerObserver struct {
	produce prometheus.Histogram // seconds per produce request, each attempt
	batch   prometheus.Histogram // messages per batch
	failed  prometheus.Counter   // messages of batches that failed every attempt
}

func newWriterObserver() *writerObserver {
	return &writerObserver{
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "produce", Buckets: produceBuckets}),
		batch:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "batch", Buckets: batchBuckets}),
		failed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "failed"}),
	}
}

// completed is the writer's Completion: called once per batch, after its
// last attempt.
func (o *writerObserver) completed(msgs []kafka.Message, err error) {
	o.batch.Observe(float64(len(msgs)))
	if err != nil {
		o.failed.Add(float64(len(msgs)))
	}
}

// observedTransport times the produce requests passing through it.
type observedTransport struct {
	next kafka.RoundTripper
	obs  *writerObserver
}

func (t *observedTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	if req.ApiKey() != protocol.Produce {
		return t.next.RoundTrip(ctx, addr, req)
	}
	start := time.Now()
	resp, err := t.next.RoundTrip(ctx, addr, req)
	t.obs.produce.Observe(time.Since(start).Seconds())
	return resp, err
}

// WriterCollector exports a writer's work as counters and histograms, which
// only grow: every scraper (two Prometheus replicas, say) sees all of it.
// kafka-go resets its own counters on every Stats call, so the collector
// accumulates them; the histograms come from the instruments NewWriter puts
// on the writer.
type WriterCollector struct {
	w      *kafka.Writer
	obs    *writerObserver
	mu     sync.Mutex
	totals struct{ writes, messages, bytes, errors, retries float64 }
	descs  struct{ writes, messages, bytes, errors, retries, failed, produce, batch *prometheus.Desc }
}

// NewWriterCollector returns a collector for w; component names the metric
// prefix (faceharvest_<component>_kafka_...) and topic is a constant label.
func NewWriterCollector(w *Writer, component string) *WriterCollector {
	c := &WriterCollector{w: w.kw, obs: w.obs}
	p := "faceharvest_" + component + "_kafka_"
	l := prometheus.Labels{"topic": w.Topic()}
	c.descs.writes = prometheus.NewDesc(p+"writes_total", "Produce requests sent by the writer, retries included.", nil, l)
	c.descs.messages = prometheus.NewDesc(p+"messages_total", "Messages sent in produce requests (a retried batch counts again).", nil, l)
	c.descs.bytes = prometheus.NewDesc(p+"bytes_total", "Bytes sent in produce requests.", nil, l)
	c.descs.errors = prometheus.NewDesc(p+"errors_total", "Produce requests that failed (each attempt).", nil, l)
	c.descs.retries = prometheus.NewDesc(p+"retries_total", "Produce requests retried after a failure.", nil, l)
	c.descs.failed = prometheus.NewDesc(p+"failed_messages_total", "Messages whose batch failed every attempt: the write returned an error.", nil, l)
	c.descs.produce = prometheus.NewDesc(p+"produce_duration_seconds", "Round trip of one produce request until every in-sync replica acknowledged it (acks=all), failed ones included.", nil, l)
	c.descs.batch = prometheus.NewDesc(p+"batch_messages", "Messages per batch written.", nil, l)
	return c
}

func (c *WriterCollector) all() []*prometheus.Desc {
	d := c.descs
	return []*prometheus.Desc{d.writes, d.messages, d.bytes, d.errors, d.retries, d.failed, d.produce, d.batch}
}

// Describe implements prometheus.Collector.
func (c *WriterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.all() {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *WriterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.w.Stats()
	c.mu.Lock()
	c.totals.writes += float64(s.Writes)
	c.totals.messages += float64(s.Messages)
	c.totals.bytes += float64(s.Bytes)
	c.totals.errors += float64(s.Errors)
	c.totals.retries += float64(s.Retries)
	t := c.totals
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.descs.writes, prometheus.CounterValue, t.writes)
	ch <- prometheus.MustNewConstMetric(c.descs.messages, prometheus.CounterValue, t.messages)
	ch <- prometheus.MustNewConstMetric(c.descs.bytes, prometheus.CounterValue, t.bytes)
	ch <- prometheus.MustNewConstMetric(c.descs.errors, prometheus.CounterValue, t.errors)
	ch <- prometheus.MustNewConstMetric(c.descs.retries, prometheus.CounterValue, t.retries)
	var m dto.Metric
	if c.obs.failed.Write(&m) == nil {
		ch <- prometheus.MustNewConstMetric(c.descs.failed, prometheus.CounterValue, m.GetCounter().GetValue())
	}
	for _, h := range []struct {
		d *prometheus.Desc
		h prometheus.Histogram
	}{{c.descs.produce, c.obs.produce}, {c.descs.batch, c.obs.batch}} {
		var m dto.Metric
		if h.h.Write(&m) != nil {
			continue
		}
		hm := m.GetHistogram()
		buckets := make(map[float64]uint64, len(hm.GetBucket()))
		for _, b := range hm.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		ch <- prometheus.MustNewConstHistogram(h.d, hm.GetSampleCount(), hm.GetSampleSum(), buckets)
	}
}
