package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
)

// withKafkaIdempotency gives a live ingest issuing through v, its
// idempotency state on the broker's compacted topic, read by a tail that
// runs until the test ends; it waits until the tail has caught up.
func withKafkaIdempotency(t *testing.T, brokers []string, v *simVendors) func(*Config) {
	return func(c *Config) {
		cl := bus.Plain(brokers...)
		w := bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: DefaultIdempotencyTopic})
		d, err := NewIdempotency(IdempotencyConfig{BodyKeys: c.LandingKeys}, KafkaIdempotencyLog{Writer: w})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = TailIdempotency(ctx, cl, DefaultIdempotencyTopic, d, slog.New(slog.DiscardHandler))
		}()
		t.Cleanup(func() { cancel(); wg.Wait(); _ = w.Close() })
		deadline := time.Now().Add(3 * time.Minute)
		for !d.Ready() {
			if time.Now().After(deadline) {
				t.Fatal("the idempotency tail never caught up")
			}
			time.Sleep(5 * time.Millisecond)
		}
		c.Megvii, c.Baidu, c.BaiduH5URL, c.Idempotency = v.megvii, v.baidu, v.baiduH5, d
	}
}

// eventsStored returns how many records the events topic holds now.
func eventsStored(t *testing.T, broker string) int64 {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(broker), Timeout: time.Minute}
	var reqs []kafka.OffsetRequest
	for p := range 3 {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range res.Topics[topic] {
		n += p.LastOffset
	}
	return n
}

// TestIssueWithBroker: on the embedded broker, the registration event is
// stored when the answer arrives; after ingest restarts, a retry with the
// same Idempotency-Key reads the answer back from the idempotency topic and
// returns the same token without a second vendor call.
func TestIssueWithBroker(t *testing.T) {
	b, err := devkafka.Start(devkafka.Config{Topics: []string{topic, DefaultIdempotencyTopic}, Compacted: []string{DefaultIdempotencyTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v := newSimVendors(t)
	first := startIngest(t, []string{b.Addr()}, withKafkaIdempotency(t, []string{b.Addr()}, v))
	body := map[string]any{"biz_no": "loan-k", "idcard_mode": "0"}
	hdr := map[string]string{IdempotencyKeyHeader: "order-k"}
	code, answer, err := postIssue(first.url+RouteMegviiTokens, hdr, body)
	if err != nil || code != 200 {
		t.Fatalf("issue: %d %s %v", code, answer, err)
	}
	if n := eventsStored(t, b.Addr()); n != 1 {
		t.Fatalf("%d events stored when the answer arrived", n)
	}
	recs := readTopic(t, b.Addr(), 1)
	var got IssuedToken
	if err := json.Unmarshal(answer, &got); err != nil || string(recs[0].Key) != "megvii:"+got.BizID || header(recs[0], "ce_id") != got.ID {
		t.Fatalf("answer %s, record %s %v", answer, recs[0].Key, err)
	}
	_ = first.srv.Close()

	second := startIngest(t, []string{b.Addr()}, withKafkaIdempotency(t, []string{b.Addr()}, v))
	code, again, err := postIssue(second.url+RouteMegviiTokens, hdr, body)
	if err != nil || code != 200 || string(again) != string(answer) {
		t.Fatalf("retry after restart: %d %s %v, first %s", code, again, err, answer)
	}
	if n := v.getTokens(); n != 1 {
		t.Fatalf("%d get_token calls", n)
	}
	if n := eventsStored(t, b.Addr()); n != 1 {
		t.Fatalf("%d events after the retry", n)
	}
}

func postIssue(url string, hdr map[string]string, body any) (int, []byte, error) {
	return postJSONWith(url, bearer, hdr, body)
}
