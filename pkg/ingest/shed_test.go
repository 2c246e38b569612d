package ingest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// gatePublisher holds every publish until release is closed, then stores
// it: a broker that stopped answering, then came back.
type gatePublisher struct {
	memPublisher
	entered chan string // the ce_id of each publish that reached the broker
	release chan struct{}
}

func (p *gatePublisher) WriteMessages(ctx context.Context, msgs ...contract.Message) error {
	for _, m := range msgs {
		id, _ := m.Header("ce_id")
		p.entered <- string(id)
	}
	<-p.release
	return p.memPublisher.WriteMessages(ctx, msgs...)
}

// TestShedBeforeAccepting: with the broker holding every publish, a
// request on a route that may shed is answered 503 with Retry-After at
// once, before its body is read, when the oldest publish has waited
// longer than MaxPublishWait; any request is, beyond MaxInFlight. Neither
// reaches the broker; both are counted in
// faceharvest_ingest_shed_total{route,reason}. A Megvii callback is not
// shed for the broker's wait (Megvii documents no resend), only at the
// in-flight bound. Every request that was taken is answered 2xx once the
// broker acknowledges, and its event is stored: nothing accepted is lost.
func TestShedBeforeAccepting(t *testing.T) {
	var clk atomic.Int64
	clk.Store(now.UnixNano())
	pub := &gatePublisher{entered: make(chan string, 16), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.LandingKeys, cfg.PublicURL = []config.Secret{config.NewSecret(landingKeyNew)}, publicURL
	cfg.MaxInFlight, cfg.MaxPublishWait, cfg.RetryAfter = 3, time.Second, 4*time.Second
	cfg.Now, cfg.Registry = func() time.Time { return time.Unix(0, clk.Load()).UTC() }, reg
	s, err := New(cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	var once sync.Once
	release := func() { once.Do(func() { close(pub.release) }) }
	t.Cleanup(release) // runs first: held requests finish, so the server can close

	async := func(method, path, ct string, body []byte, hdr map[string]string) <-chan resp {
		out := make(chan resp, 1)
		go func() {
			r, err := send(srv.URL, method, path, ct, body, hdr)
			if err != nil {
				r.raw = err.Error()
			}
			out <- r
		}()
		return out
	}
	auth := map[string]string{"Authorization": "Bearer " + bearer}
	register := func(id string) <-chan resp {
		return async("POST", RouteTokens, "application/json", []byte(`{"vendor":"megvii","verification_id":"`+id+`"}`), auth)
	}
	callback := func(data string) <-chan resp {
		return async("POST", RouteMegviiCallback, "application/x-www-form-urlencoded", signed(secretNew, data).EncodeForm(), nil)
	}
	// taken waits for a request to reach the broker.
	var taken []string
	take := func(what string) {
		t.Helper()
		select {
		case id := <-pub.entered:
			taken = append(taken, id)
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s never reached the broker", what)
		}
	}
	// shed waits for a request's answer and fails if it reached the broker
	// instead: it was queued, not shed.
	shed := func(what string, a <-chan resp) {
		t.Helper()
		select {
		case got := <-a:
			if got.code != http.StatusServiceUnavailable || got.header.Get("Retry-After") != "4" || !strings.Contains(got.raw, "nothing was stored") {
				t.Fatalf("%s: %d %v %s, want 503 with Retry-After 4", what, got.code, got.header, got.raw)
			}
		case id := <-pub.entered:
			t.Fatalf("%s was queued for the broker (%s) instead of being shed", what, id)
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: no answer while the broker holds", what)
		}
	}

	first := register("m-first")
	take("the first registration")
	// Within MaxPublishWait, a request still goes to the broker.
	clk.Add(int64(time.Second / 2))
	second := register("m-second")
	take("a registration within the publish wait")
	// The oldest publish has waited longer than MaxPublishWait: the routes
	// that may shed answer 503 before their body is read.
	clk.Add(int64(time.Second))
	shed("a registration while the broker is slow", register("m-shed"))
	shed("a Baidu landing while the broker is slow", async("GET", signedLanding(t, "success", "vt-shed"), "", nil, nil))
	// A Megvii callback is not shed for the wait: it goes to the broker.
	data := docData()
	cb := callback(data)
	take("a Megvii callback while the broker is slow")
	// MaxInFlight (3) requests are being served: the next is shed, whatever
	// its route.
	shed("a Megvii callback beyond --max-inflight", callback(strings.Replace(data, `"OK"`, `"FAILED"`, 1)))

	for _, c := range []struct {
		route, reason string
		want          float64
	}{
		{RouteTokens, "publish_wait", 1}, {RouteBaiduSuccess, "publish_wait", 1}, {RouteMegviiCallback, "inflight", 1},
		{RouteMegviiCallback, "publish_wait", 0}, {RouteTokens, "inflight", 0},
	} {
		if got := metricValue(t, reg, "faceharvest_ingest_shed_total", map[string]string{"route": c.route, "reason": c.reason}); got != c.want {
			t.Errorf("shed_total{route=%s,reason=%s} = %v, want %v", c.route, c.reason, got, c.want)
		}
	}

	// The broker answers: every request taken is acknowledged and stored.
	release()
	for what, a := range map[string]<-chan resp{"first": first, "second": second, "callback": cb} {
		if got := <-a; got.code != http.StatusAccepted && got.code != http.StatusOK {
			t.Fatalf("%s: %d %s after the broker answered", what, got.code, got.raw)
		}
	}
	stored := map[string]bool{}
	for _, e := range pub.envelopes(t) {
		stored[e.ID] = true
	}
	if len(stored) != len(taken) {
		t.Fatalf("%d events stored, %d taken", len(stored), len(taken))
	}
	for _, id := range taken {
		if !stored[id] {
			t.Fatalf("event %s was taken but not stored", id)
		}
	}
	// Nothing waits for the broker now: a request is served again.
	if got := <-register("m-shed"); got.code != http.StatusAccepted {
		t.Fatalf("after the broker answered: %d %s", got.code, got.raw)
	}
}
