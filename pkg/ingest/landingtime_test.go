package ingest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestStaleLandingRefused: a landing URL carries its signed issue time and
// the caller it was given to. Within --max-landing-age it lands, and the
// event names that caller (the harvester ignores a landing naming another
// caller than the verification's owner); after it, it is refused 401
// (stale) and publishes nothing, however often it is replayed; altering
// the time or the caller breaks the signature.
func TestStaleLandingRefused(t *testing.T) {
	f, clk := newSteppedFixture(t, func(c *Config) { c.MaxLandingAge = time.Hour })
	r := f.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"baidu","verification_id":"vt-timed"}`), map[string]string{"Authorization": "Bearer " + bearer})
	if r.code != 202 {
		t.Fatalf("register: %d %s", r.code, r.raw)
	}
	success := r.body["registered"].([]any)[0].(map[string]any)["success_url"].(string)
	path := strings.TrimPrefix(success, publicURL)
	for _, altered := range []string{strings.Replace(path, "&ts=", "&ts=1", 1), strings.Replace(path, "&c=", "&c=0", 1)} {
		if r := f.do(t, "GET", altered, "", nil, nil); r.code != 401 {
			t.Errorf("altered %s: %d, want 401", altered, r.code)
		}
	}
	if r := f.do(t, "GET", path, "", nil, nil); r.code != 303 {
		t.Fatalf("a fresh landing: %d %s", r.code, r.raw)
	}
	envs := f.pub.envelopes(t)
	var ev contract.Event
	_ = json.Unmarshal(envs[len(envs)-1].Value, &ev)
	if envs[len(envs)-1].Type != contract.TypeBaiduCompletion || ev.Caller != callerID(bearer) {
		t.Fatalf("landing event %s %+v, want the caller %s", envs[len(envs)-1].Type, ev, callerID(bearer))
	}
	clk.Advance(time.Hour + time.Second)
	for range 3 {
		if r := f.do(t, "GET", path, "", nil, nil); r.code != 401 || !strings.Contains(r.raw, "expired") {
			t.Fatalf("a landing after --max-landing-age: %d %s, want 401", r.code, r.raw)
		}
	}
	if n := len(f.pub.envelopes(t)); n != len(envs) {
		t.Fatalf("stale landings published %d events", n-len(envs))
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_landing_signature_failures_total", map[string]string{"reason": "stale"}); got != 3 {
		t.Errorf("stale %v, want 3", got)
	}
}

// TestBothLandingsRefuseTheSameForgeries: the Baidu landing and the Megvii
// return landing go through one check, so each refuses (401, nothing
// published, no redirect) the same forged, unsigned, altered and stale
// URLs, and lands a fresh one.
func TestBothLandingsRefuseTheSameForgeries(t *testing.T) {
	v := newSimVendors(t)
	f, clk := newSteppedFixture(t, func(c *Config) {
		v.issuing(t, &memLog{})(c)
		c.MaxLandingAge = time.Hour
	})
	auth := map[string]string{"Authorization": "Bearer " + bearer}
	r := f.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"baidu","verification_id":"vt-both"}`), auth)
	if r.code != 202 {
		t.Fatalf("register: %d %s", r.code, r.raw)
	}
	baiduPath := strings.TrimPrefix(r.body["registered"].([]any)[0].(map[string]any)["success_url"].(string), publicURL)
	r = f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "loan-both", "return_url": "https://customer.example/done"})
	if r.code != 200 {
		t.Fatalf("issue: %d %s", r.code, r.raw)
	}
	bizID := r.body["biz_id"].(string)
	v.clk.Advance(time.Minute)
	cb := signed(secretNew, v.sim.CallbackData(bizID)).EncodeForm()
	megviiPath := strings.TrimPrefix(returnURLOf(t, v, bizID), publicURL)
	landings := []struct {
		name, method, path string
		body               []byte
	}{{"baidu", "GET", baiduPath, nil}, {"megvii return", "POST", megviiPath, cb}}
	forged := func(path string) map[string]string {
		i := strings.Index(path, "&sig=") + len("&sig=")
		j := i + landingSigLen
		return map[string]string{
			"signed with an unknown key": path[:i] + landingSig("an-unknown-landing-key-0123456789abcdef", "success", "x")[:landingSigLen] + path[j:],
			"unsigned":                   path[:i-len("&sig=")] + path[j:],
			"its time altered":           strings.Replace(path, "&ts=", "&ts=1", 1),
			"its caller altered":         strings.Replace(path, "&c=", "&c=0", 1),
			"its page altered":           strings.Replace(path, "customer.example", "evil.example", 1),
		}
	}
	land := func(l struct {
		name, method, path string
		body               []byte
	}, path string) resp {
		return f.do(t, l.method, path, "application/x-www-form-urlencoded", l.body, nil)
	}
	published := len(f.pub.envelopes(t))
	for _, l := range landings {
		for what, path := range forged(l.path) {
			if path == l.path {
				continue // a Baidu landing without a page of its own
			}
			if got := land(l, path); got.code != 401 || got.header.Get("Location") != "" {
				t.Errorf("%s %s: %d %s, want 401", l.name, what, got.code, got.raw)
			}
		}
	}
	clk.Advance(time.Hour + time.Second)
	for _, l := range landings {
		if got := land(l, l.path); got.code != 401 || !strings.Contains(got.raw, "expired") || got.header.Get("Location") != "" {
			t.Errorf("%s after --max-landing-age: %d %s, want 401 expired", l.name, got.code, got.raw)
		}
	}
	if n := len(f.pub.envelopes(t)); n != published {
		t.Fatalf("refused landings published %d events", n-published)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_landing_signature_failures_total", map[string]string{"reason": "stale"}); got != 2 {
		t.Errorf("stale %v, want 2", got)
	}
	clk.Advance(-time.Hour - time.Second)
	for _, l := range landings {
		if got := land(l, l.path); got.code != 303 {
			t.Errorf("%s fresh: %d %s, want 303", l.name, got.code, got.raw)
		}
	}
}
