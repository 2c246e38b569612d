package ingest

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestInvalidBodiesClaimNothing: a body that fails validation is refused
// before its Idempotency-Key is claimed: 3,000 of them under one key write
// no idempotency record and leave the in-memory state as it was.
func TestInvalidBodiesClaimNothing(t *testing.T) {
	v := newSimVendors(t)
	log := &memLog{}
	f := newFixture(t, func(c *Config) { v.issuing(t, log)(c); c.IssueBurst = 5000 })
	if r := f.issue(t, RouteMegviiTokens, "k-good", map[string]any{"biz_no": "b-1"}); r.code != 200 {
		t.Fatalf("a valid issuing: %d %s", r.code, r.raw)
	}
	log.mu.Lock()
	before := log.count
	log.mu.Unlock()
	for range 3000 {
		if r := f.issue(t, RouteMegviiTokens, "k-bad", map[string]any{"biz_no": "b-1", "comparison_type": "nope"}); r.code != http.StatusBadRequest {
			t.Fatalf("an invalid body: %d %s", r.code, r.raw)
		}
	}
	log.mu.Lock()
	after := log.count
	log.mu.Unlock()
	d := f.s.cfg.Idempotency
	d.mu.Lock()
	entries, order := len(d.entries), len(d.order)
	d.mu.Unlock()
	if after != before || entries != 1 || order > 2*entries+64 {
		t.Fatalf("after 3,000 invalid bodies: %d idempotency records written, %d entries, order queue %d", after-before, entries, order)
	}
}

// TestOrderQueueProportionalToEntries: records that replace a key's entry
// (a claim released and claimed again, 3,000 times) do not grow the order
// queue beyond a bound proportional to the live entries.
func TestOrderQueueProportionalToEntries(t *testing.T) {
	log := &memLog{}
	d := log.replica(t, func() time.Time { return now })
	for range 3000 {
		c, err := d.Begin(context.Background(), RouteMegviiTokens, "caller", "k", []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		d.Release(context.Background(), c)
	}
	d.mu.Lock()
	entries, order := len(d.entries), len(d.order)
	d.mu.Unlock()
	if order > 2*entries+64 {
		t.Fatalf("%d entries, order queue %d", entries, order)
	}
}

// TestIssuingRateLimitedPerCaller: a caller beyond its burst is answered
// 429 before its body is read, without a vendor call; another caller is
// not held back by it.
func TestIssuingRateLimitedPerCaller(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, func(c *Config) {
		v.issuing(t, &memLog{})(c)
		c.IssueBurst, c.IssueRate = 3, 0.001
	})
	for i := range 3 {
		if r := f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "b-" + string(rune('a'+i))}); r.code != 200 {
			t.Fatalf("issuing %d within the burst: %d %s", i, r.code, r.raw)
		}
	}
	r := f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "b-z"})
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("beyond the burst: %d %s", r.code, r.raw)
	}
	if n := v.getTokens(); n != 3 {
		t.Fatalf("%d get_token calls, want 3", n)
	}
	other := f.do(t, "POST", RouteMegviiTokens, "application/json", []byte(`{"biz_no":"o-1"}`), map[string]string{"Authorization": "Bearer other-token"})
	if other.code != 200 {
		t.Fatalf("another caller: %d %s", other.code, other.raw)
	}
}
