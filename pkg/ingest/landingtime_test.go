package ingest

import (
	"encoding/json"
	"strings"
	"sync/atomic"
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
	var clk atomic.Int64
	clk.Store(now.UnixNano())
	f := newFixture(t, func(c *Config) {
		c.Now = func() time.Time { return time.Unix(0, clk.Load()).UTC() }
		c.MaxLandingAge = time.Hour
	})
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
	clk.Add(int64(time.Hour + time.Second))
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
