package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestForeignCallerRefused: a verification belongs to the caller that
// registered it first. Another caller's registration (here backdated 7
// days with its own biz_no, which would close the verification expired)
// is refused 409, publishes nothing, gets no landing URL and is counted;
// the owner registers again freely. Events name the caller by a hash of
// its token, never the token.
func TestForeignCallerRefused(t *testing.T) {
	f := newFixture(t, nil)
	js := "application/json"
	owner := map[string]string{"Authorization": "Bearer " + bearer}
	other := map[string]string{"Authorization": "Bearer other-token"}
	a := f.do(t, "POST", RouteTokens, js, []byte(`{"vendor":"baidu","verification_id":"vt-owned","issued_at":"2026-05-01T11:00:00Z","biz_no":"A-1"}`), owner)
	if a.code != 202 {
		t.Fatalf("owner: %d %s", a.code, a.raw)
	}
	for _, body := range []string{
		`{"vendor":"baidu","verification_id":"vt-owned","issued_at":"2026-04-24T12:00:00Z","biz_no":"B-1"}`,
		`[{"vendor":"megvii","verification_id":"fresh"},{"vendor":"baidu","verification_id":"vt-owned"}]`,
	} {
		b := f.do(t, "POST", RouteTokens, js, []byte(body), other)
		if b.code != 409 || strings.Contains(b.raw, "success_url") || b.header.Get("Retry-After") != "" {
			t.Fatalf("another caller: %d %s, want 409 without landing URLs", b.code, b.raw)
		}
		t.Logf("another caller's answer: %d %s", b.code, b.raw)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_rejections_total", map[string]string{"route": RouteTokens, "reason": "foreign_caller"}); got != 2 {
		t.Errorf("foreign_caller refusals %v, want 2", got)
	}
	if r := f.do(t, "POST", RouteTokens, js, []byte(`{"vendor":"baidu","verification_id":"vt-owned"}`), owner); r.code != 202 {
		t.Fatalf("the owner again: %d %s", r.code, r.raw)
	}
	envs := f.pub.envelopes(t)
	if len(envs) != 2 {
		t.Fatalf("%d events, want the owner's 2", len(envs))
	}
	for _, e := range envs {
		var ev contract.Event
		_ = json.Unmarshal(e.Value, &ev)
		if ev.Caller == "" || ev.Caller != callerID(bearer) || strings.Contains(string(e.Value), bearer) {
			t.Errorf("event caller %q, want the token's hash %q", ev.Caller, callerID(bearer))
		}
	}
}
