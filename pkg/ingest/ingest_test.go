package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// memPublisher is an in-memory Publisher.
type memPublisher struct {
	mu    sync.Mutex
	msgs  []contract.Message
	err   error
	panic bool
}

func (p *memPublisher) WriteMessages(ctx context.Context, msgs ...contract.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.panic {
		panic("publisher exploded")
	}
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *memPublisher) envelopes(t *testing.T) []contract.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]contract.Envelope, len(p.msgs))
	for i, m := range p.msgs {
		e, err := contract.FromMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const (
	secretOld = "megvii-secret-previous"
	secretNew = "megvii-secret-current"
	bearer    = "app-bearer-token-1"
)

// testConfig is DefaultConfig with the current Megvii secret and the
// bearer token: the least New accepts.
func testConfig() Config {
	c := DefaultConfig()
	c.MegviiSecrets, c.BearerTokens = []config.Secret{config.NewSecret(secretNew)}, []config.Secret{config.NewSecret(bearer)}
	return c
}

type fixture struct {
	s    *Server
	srv  *httptest.Server
	pub  *memPublisher
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	pub := &memPublisher{}
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	cfg := DefaultConfig()
	cfg.MegviiSecrets = []config.Secret{config.NewSecret(secretNew), config.NewSecret(secretOld)}
	cfg.BearerTokens = []config.Secret{config.NewSecret("other-token"), config.NewSecret(bearer)}
	cfg.LandingKeys = []config.Secret{config.NewSecret(landingKeyNew), config.NewSecret(landingKeyOld)}
	cfg.PublicURL = publicURL
	cfg.BaiduSuccessRedirect = "https://customer.example/kyc/done"
	cfg.MaxBodyBytes = 64 << 10
	cfg.Now = func() time.Time { return now }
	cfg.Registry = reg
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &fixture{s: s, srv: srv, pub: pub, reg: reg, logs: logs}
}

// newSteppedFixture is newFixture on a frozen clock, starting at now, that
// the test advances.
func newSteppedFixture(t *testing.T, mutate func(*Config)) (*fixture, *clock.Sim) {
	t.Helper()
	clk := clock.NewSim(now, 0, nil)
	f := newFixture(t, func(c *Config) {
		c.Now = clk.Now
		if mutate != nil {
			mutate(c)
		}
	})
	return f, clk
}

type resp struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(t *testing.T, method, path, ct string, body []byte, hdr map[string]string) resp {
	t.Helper()
	out, err := send(f.srv.URL, method, path, ct, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// send sends one request to the server at base, not following redirects;
// it may run on any goroutine.
func send(base, method, path, ct string, body []byte, hdr map[string]string) (resp, error) {
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r, err := client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	out := resp{code: r.StatusCode, header: r.Header, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out, nil
}

func signed(secret string, data string) megvii.Callback {
	return megvii.Callback{Data: data, Sign: megvii.Sign(secret, data)}
}

func docData() string { return string(vendordocs.MustExample("megvii_get_result_ok_000.json")) }

func TestMegviiCallback(t *testing.T) {
	data := docData()
	form := "application/x-www-form-urlencoded"
	big := strings.Repeat("x", 70<<10)
	cases := []struct {
		name   string
		method string
		ct     string
		body   []byte
		code   int
		reason string // rejection reason, or "" when published
	}{
		{"form (document 000)", "POST", form, signed(secretNew, data).EncodeForm(), 200, ""},
		{"json (document 002)", "POST", "application/json", signed(secretNew, data).EncodeJSON(), 200, ""},
		{"previous secret during rotation", "POST", form, signed(secretOld, data).EncodeForm(), 200, ""},
		{"no content type, sniffed", "POST", "", signed(secretNew, data).EncodeJSON(), 200, ""},
		{"bad signature", "POST", form, signed("attacker", data).EncodeForm(), 401, "signature"},
		{"missing sign", "POST", form, []byte("data=" + url.QueryEscape(data)), 401, "signature"},
		{"tampered data", "POST", form, megvii.Callback{Data: strings.Replace(data, "PASS", "FAIL", 1), Sign: megvii.Sign(secretNew, data)}.EncodeForm(), 401, "signature"},
		{"xml", "POST", "application/xml", []byte("<x/>"), 415, "media_type"},
		{"multipart", "POST", "multipart/form-data; boundary=b", []byte("--b--"), 415, "media_type"},
		{"too large", "POST", form, []byte("data=" + big + "&sign=x"), 413, "too_large"},
		{"no data", "POST", form, []byte("sign=abc"), 400, "malformed"},
		{"signed garbage", "POST", form, signed(secretNew, "not json").EncodeForm(), 400, "malformed"},
		{"signed, no biz_id", "POST", form, signed(secretNew, `{"status":"OK","biz_info":{}}`).EncodeForm(), 400, "malformed"},
		{"GET", "GET", "", nil, 405, "method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			r := f.do(t, c.method, RouteMegviiCallback, c.ct, c.body, nil)
			if r.code != c.code {
				t.Fatalf("code %d: %s", r.code, r.raw)
			}
			envs := f.pub.envelopes(t)
			if c.reason != "" {
				if len(envs) != 0 {
					t.Fatal("a refused callback was published")
				}
				if got := metricValue(t, f.reg, "faceharvest_ingest_rejections_total", map[string]string{"route": RouteMegviiCallback, "reason": c.reason}); got != 1 {
					t.Fatalf("rejection metric %v", got)
				}
				if r.header.Get("X-Request-Id") == "" || r.body["request_id"] == nil {
					t.Fatal("no request id")
				}
				return
			}
			if len(envs) != 1 {
				t.Fatalf("%d events", len(envs))
			}
			e := envs[0]
			var ev contract.Event
			if err := json.Unmarshal(e.Value, &ev); err != nil {
				t.Fatal(err)
			}
			bizID := "1462259748,52b13fb5-8dfb-4537-a62b-a641d5e929f1"
			if e.Key != "megvii:"+bizID || e.Type != contract.TypeMegviiCallback || e.ID != r.body["id"] || !e.Time.Equal(now) ||
				ev.VerificationID != bizID || ev.BizNo != "cc47190f-5502-44a2-ab74-ea4f0f649f61" || ev.Status != "OK" || ev.Data != data {
				t.Fatalf("event %+v %+v", e, ev)
			}
		})
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if fmt.Sprint(got) == fmt.Sprint(labels) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func TestDuplicateCallbacksShareID(t *testing.T) {
	f := newFixture(t, nil)
	body := signed(secretNew, docData()).EncodeForm()
	a := f.do(t, "POST", RouteMegviiCallback, "application/x-www-form-urlencoded", body, nil)
	b := f.do(t, "POST", RouteMegviiCallback+"?channel=return_url", "application/x-www-form-urlencoded", body, nil)
	if a.code != 200 || b.code != 200 || a.body["id"] != b.body["id"] {
		t.Fatalf("%v %v", a.body, b.body)
	}
	other := f.do(t, "POST", RouteMegviiCallback, "application/json", signed(secretNew, strings.Replace(docData(), `"OK"`, `"FAILED"`, 1)).EncodeJSON(), nil)
	if other.body["id"] == a.body["id"] {
		t.Fatal("different callbacks share an id")
	}
}

func TestBrokerFailureIs503(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RetryAfter = 7 * time.Second })
	f.pub.err = errors.New("kafka: leader not available")
	r := f.do(t, "POST", RouteMegviiCallback, "application/json", signed(secretNew, docData()).EncodeJSON(), nil)
	if r.code != 503 || r.header.Get("Retry-After") != "7" {
		t.Fatalf("%d %v", r.code, r.header)
	}
	r = f.do(t, "GET", signedLanding(t, "success", "abc"), "", nil, nil)
	if r.code != 503 {
		t.Fatalf("landing: %d", r.code)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_rejections_total", map[string]string{"route": RouteMegviiCallback, "reason": "broker"}); got != 1 {
		t.Fatalf("broker rejections %v", got)
	}
}

func TestPanicRecovered(t *testing.T) {
	f := newFixture(t, nil)
	f.pub.panic = true
	r := f.do(t, "GET", signedLanding(t, "success", "abc"), "", nil, nil)
	if r.code != 500 {
		t.Fatalf("code %d", r.code)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_panics_total", map[string]string{}); got != 1 {
		t.Fatalf("panics %v", got)
	}
	f.pub.panic = false
	if r := f.do(t, "GET", signedLanding(t, "success", "abc"), "", nil, nil); r.code != 303 {
		t.Fatalf("after a panic: %d", r.code)
	}
}

func TestBaiduLanding(t *testing.T) {
	cases := []struct {
		name, path string
		code       int
		location   string
		status     string
	}{
		{"success redirects to the configured page", signedLanding(t, "success", "Yz9rWITm4vak16PBAh5x8oG7"), 303, "https://customer.example/kyc/done", "success"},
		{"no open redirect", signedLanding(t, "success", "t1") + "&redirect=https://evil.example&next=//evil.example", 303, "https://customer.example/kyc/done", "success"},
		{"failure without a configured page answers a page", signedLanding(t, "failure", "t2"), 200, "", "failure"},
		{"missing token", RouteBaiduSuccess, 400, "", ""},
		{"token with spaces", RouteBaiduFailure + "?verify_token=a%20b", 400, "", ""},
		{"token too long", RouteBaiduFailure + "?verify_token=" + strings.Repeat("a", 129), 400, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			r := f.do(t, "GET", c.path, "", nil, nil)
			if r.code != c.code || r.header.Get("Location") != c.location {
				t.Fatalf("%d %q %s", r.code, r.header.Get("Location"), r.raw)
			}
			envs := f.pub.envelopes(t)
			if c.status == "" {
				if len(envs) != 0 {
					t.Fatal("published")
				}
				return
			}
			var ev contract.Event
			_ = json.Unmarshal(envs[0].Value, &ev)
			if ev.Vendor != contract.Baidu || ev.Status != c.status || envs[0].Type != contract.TypeBaiduCompletion || !strings.HasPrefix(envs[0].Key, "baidu:") {
				t.Fatalf("event %+v", ev)
			}
		})
	}
	f := newFixture(t, nil)
	if r := f.do(t, "POST", RouteBaiduSuccess+"?verify_token=x", "", nil, nil); r.code != 405 || r.header.Get("Allow") != "GET" {
		t.Fatalf("POST landing: %d", r.code)
	}
}

func TestTokenRegistration(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer " + bearer}
	js := "application/json"
	cases := []struct {
		name    string
		hdr     map[string]string
		ct      string
		body    string
		code    int
		want    string // in the error, or the number of registrations
		wantNum int
	}{
		{"one", auth, js, `{"vendor":"megvii","verification_id":"1462259748,52b1","issued_at":"2026-05-01T11:00:00Z","biz_no":"order-1","metadata":{"channel":"app"}}`, 202, "", 1},
		{"array", auth, js, `[{"vendor":"megvii","verification_id":"a"},{"vendor":"BAIDU","verification_id":"b"}]`, 202, "", 2},
		{"tokens object, duplicates folded", auth, js, `{"tokens":[{"vendor":"baidu","verification_id":"b"},{"vendor":"baidu","verification_id":"b"}]}`, 202, "", 1},
		{"no auth", nil, js, `{"vendor":"megvii","verification_id":"a"}`, 401, "bearer", 0},
		{"wrong token", map[string]string{"Authorization": "Bearer app-bearer-token-2"}, js, `{}`, 401, "bearer", 0},
		{"basic auth", map[string]string{"Authorization": "Basic YTpi"}, js, `{}`, 401, "bearer", 0},
		{"form", auth, "application/x-www-form-urlencoded", `vendor=megvii`, 415, "application/json", 0},
		{"unknown vendor", auth, js, `{"vendor":"acme","verification_id":"a"}`, 400, "vendor: unknown vendor", 0},
		{"missing id", auth, js, `{"vendor":"megvii"}`, 400, "verification_id: required", 0},
		{"far future", auth, js, `{"vendor":"megvii","verification_id":"a","issued_at":"2026-05-01T13:00:00Z"}`, 400, "issued_at: 2026-05-01T13:00:00Z is more than 5m0s in the future", 0},
		{"far past, in a batch", auth, js, `[{"vendor":"megvii","verification_id":"a"},{"vendor":"baidu","verification_id":"b","issued_at":"2026-04-01T00:00:00Z"}]`, 400, "tokens[1].issued_at", 0},
		{"bad time", auth, js, `{"vendor":"megvii","verification_id":"a","issued_at":"yesterday"}`, 400, "issued_at: want RFC 3339", 0},
		{"unknown field", auth, js, `{"vendor":"megvii","verification_id":"a","id_no":"110101199003070011"}`, 400, `unknown field "id_no"`, 0},
		{"wrong type", auth, js, `{"vendor":"megvii","verification_id":7}`, 400, "field verification_id", 0},
		{"empty batch", auth, js, `[]`, 400, "send 1 to", 0},
		{"not JSON", auth, js, `hello`, 400, "want a JSON object or array", 0},
		{"two values", auth, js, `{"vendor":"megvii","verification_id":"a"} {}`, 400, "one JSON value", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) { cfg.MaxBatch = 3 })
			r := f.do(t, "POST", RouteTokens, c.ct, []byte(c.body), c.hdr)
			if r.code != c.code {
				t.Fatalf("code %d: %s", r.code, r.raw)
			}
			envs := f.pub.envelopes(t)
			if c.code != 202 {
				if msg, _ := r.body["error"].(string); !strings.Contains(msg, c.want) || len(envs) != 0 {
					t.Fatalf("error %s (published %d)", r.raw, len(envs))
				}
				if c.code == 401 && r.header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate")
				}
				return
			}
			if len(envs) != c.wantNum || len(r.body["registered"].([]any)) != c.wantNum {
				t.Fatalf("%d events: %s", len(envs), r.raw)
			}
			var ev contract.Event
			_ = json.Unmarshal(envs[0].Value, &ev)
			if envs[0].Type != contract.TypeTokenRegistered || ev.IssuedAt == nil || !envs[0].Time.Equal(*ev.IssuedAt) {
				t.Fatalf("event %+v", ev)
			}
		})
	}
	f := newFixture(t, func(cfg *Config) { cfg.MaxBatch = 3 })
	r := f.do(t, "POST", RouteTokens, js, []byte(`[{"vendor":"megvii","verification_id":"a"},{"vendor":"megvii","verification_id":"b"},{"vendor":"megvii","verification_id":"c"},{"vendor":"megvii","verification_id":"d"}]`), auth)
	if r.code != 400 {
		t.Fatalf("over the batch limit: %d", r.code)
	}
	// The same registration twice yields the same id.
	one := `{"vendor":"megvii","verification_id":"z","issued_at":"2026-05-01T11:00:00Z"}`
	a := f.do(t, "POST", RouteTokens, js, []byte(one), auth)
	b := f.do(t, "POST", RouteTokens, js, []byte(one), auth)
	if a.raw != b.raw {
		t.Fatalf("%s vs %s", a.raw, b.raw)
	}
}

func TestNoSecretsOrIDNumbersInLogs(t *testing.T) {
	f := newFixture(t, nil)
	data := docData()
	f.do(t, "POST", RouteMegviiCallback, "application/json", signed(secretNew, data).EncodeJSON(), nil)
	f.do(t, "POST", RouteMegviiCallback, "application/json", signed("wrong", data).EncodeJSON(), nil)
	f.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"megvii","verification_id":"a","id_no":"110101199003070011"}`), map[string]string{"Authorization": "Bearer " + bearer})
	f.do(t, "POST", RouteTokens, "application/json", []byte(`{}`), map[string]string{"Authorization": "Bearer guessed-token"})
	f.pub.err = errors.New("broker down")
	f.do(t, "POST", RouteMegviiCallback, "application/json", signed(secretNew, data).EncodeJSON(), nil)
	logs := f.logs.String()
	for _, secret := range []string{secretNew, secretOld, bearer, "guessed-token", "xxxxxx19910602xxxx", "110101199003070011", "陈AB"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("logs contain %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `"request_id"`) {
		t.Fatal("logs lack request ids")
	}
}

func TestNewValidates(t *testing.T) {
	s := []config.Secret{config.NewSecret("x")}
	for _, mutate := range []func(*Config){
		func(c *Config) { c.BearerTokens = s },
		func(c *Config) { c.MegviiSecrets = s },
		func(c *Config) { c.MegviiSecrets, c.BearerTokens, c.BaiduSuccessRedirect = s, s, "javascript:alert(1)" },
	} {
		cfg := DefaultConfig()
		mutate(&cfg)
		if _, err := New(cfg, &memPublisher{}); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

// holdingPublisher holds each publish until released, reporting whether its
// context was still live then.
type holdingPublisher struct {
	entered chan struct{}
	release chan struct{}
	ctxErr  chan error
}

func (p *holdingPublisher) WriteMessages(ctx context.Context, msgs ...contract.Message) error {
	p.entered <- struct{}{}
	<-p.release
	p.ctxErr <- ctx.Err()
	return ctx.Err()
}

// TestCallerHangingUpDoesNotCutPublish: a vendor that closes its connection
// while the event is on its way to the broker must not abandon the publish
// midway; it completes (or times out) on its own deadline.
func TestCallerHangingUpDoesNotCutPublish(t *testing.T) {
	pub := &holdingPublisher{entered: make(chan struct{}, 1), release: make(chan struct{}), ctxErr: make(chan error, 1)}
	s, err := New(testConfig(), pub)
	if err != nil {
		t.Fatal(err)
	}
	gone := make(chan struct{})
	h := s.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		go func() { <-r.Context().Done(); close(gone) }()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+RouteMegviiCallback, bytes.NewReader(signed(secretNew, docData()).EncodeForm()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-pub.entered
	cancel() // the caller hangs up while the publish is held
	<-gone   // and the server has noticed
	close(pub.release)
	if err := <-pub.ctxErr; err != nil {
		t.Fatalf("the publish's context ended with its caller: %v", err)
	}
	<-done
}

// TestCallbackDataTravelsAsObject: checked data that is exactly an object
// travels as that object, unescaped; data with whitespace around it (which
// the signature covers) travels as a string. Both read back byte for byte.
func TestCallbackDataTravelsAsObject(t *testing.T) {
	for _, c := range []struct {
		data   string
		object bool
	}{{strings.TrimSpace(docData()), true}, {docData(), false}, {" " + strings.TrimSpace(docData()), false}} {
		f := newFixture(t, nil)
		if r := f.do(t, "POST", RouteMegviiCallback, "application/x-www-form-urlencoded", signed(secretNew, c.data).EncodeForm(), nil); r.code != 200 {
			t.Fatalf("code %d: %s", r.code, r.raw)
		}
		e := f.pub.envelopes(t)[0]
		var raw struct{ Data json.RawMessage }
		var ev contract.Event
		if err := json.Unmarshal(e.Value, &raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(e.Value, &ev); err != nil || ev.Data != c.data {
			t.Fatalf("data read back as %.60q (%v)", ev.Data, err)
		}
		if got := string(raw.Data) == c.data; got != c.object {
			t.Fatalf("%.20q: carried as the object itself %v, want %v: %.60s", c.data, got, c.object, raw.Data)
		}
	}
}
