package ingest

import (
	"net/http"
	"testing"
	"time"
)

// TestWrongBearerTokensLimited: an address that sent FailedTokenBurst
// wrong bearer tokens is answered 429 with Retry-After without its token
// being checked (even a right one), until its bucket refills.
func TestWrongBearerTokensLimited(t *testing.T) {
	f, clk := newSteppedFixture(t, func(c *Config) { c.FailedTokenBurst, c.FailedTokenEvery = 3, time.Minute })
	reg := []byte(`{"vendor":"megvii","verification_id":"m1"}`)
	for i := range 3 {
		if r := f.do(t, "POST", RouteTokens, "application/json", reg, map[string]string{"Authorization": "Bearer guess-" + string(rune('a'+i))}); r.code != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d", i, r.code)
		}
	}
	r := f.do(t, "POST", RouteTokens, "application/json", reg, map[string]string{"Authorization": "Bearer " + bearer})
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after 3 wrong tokens: %d %s, want 429 with Retry-After", r.code, r.raw)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_rejections_total", map[string]string{"route": RouteTokens, "reason": "too_many_failures"}); got != 1 {
		t.Errorf("too_many_failures %v", got)
	}
	clk.Advance(time.Minute)
	if r := f.do(t, "POST", RouteTokens, "application/json", reg, map[string]string{"Authorization": "Bearer " + bearer}); r.code != 202 {
		t.Fatalf("after a refill: %d %s", r.code, r.raw)
	}
}
