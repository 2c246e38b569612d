package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// memLog is an in-memory idempotency log shared by the replicas subscribed
// to it: Append hands the record to every one of them, in order, before it
// returns (a log read back at once).
type memLog struct {
	mu    sync.Mutex
	subs  []*Idempotency
	err   error
	count int
}

func (l *memLog) Append(ctx context.Context, key string, value []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.count++
	for _, d := range l.subs {
		d.Apply(key, value)
	}
	return nil
}

func (l *memLog) replica(t *testing.T, now clock.Now) *Idempotency {
	t.Helper()
	d, err := NewIdempotency(IdempotencyConfig{BodyKeys: []config.Secret{config.NewSecret(landingKeyNew)}, Now: now}, l)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.subs = append(l.subs, d)
	l.mu.Unlock()
	d.SetReady()
	return d
}

// simVendors runs the vendor simulator on real loopback HTTP with clients
// for it.
type simVendors struct {
	sim     *vendorsim.Sim
	clk     *clock.Sim
	megvii  *megvii.Client
	baidu   *baidu.Client
	baiduH5 string
}

func newSimVendors(t *testing.T) *simVendors {
	t.Helper()
	clk := clock.NewSim(now, 0, nil)
	sim := vendorsim.New(vendorsim.Config{Clock: clk, MegviiAPIKey: "mk", MegviiAPISecret: secretNew, BaiduAPIKey: "bk", BaiduSecretKey: "bs"})
	ms := httptest.NewServer(sim.MegviiHandler())
	bs := httptest.NewServer(sim.BaiduHandler())
	t.Cleanup(ms.Close)
	t.Cleanup(bs.Close)
	mc, err := megvii.New(megvii.Config{BaseURL: ms.URL, APIKey: config.NewSecret("mk"), APISecret: config.NewSecret(secretNew)})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := baidu.New(baidu.Config{BaseURL: bs.URL, APIKey: config.NewSecret("bk"), SecretKey: config.NewSecret("bs"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &simVendors{sim: sim, clk: clk, megvii: mc, baidu: bc, baiduH5: bs.URL + vendorsim.BaiduH5Path}
}

// issuing configures a fixture to issue through v, with idempotency on log.
func (v *simVendors) issuing(t *testing.T, log *memLog) func(*Config) {
	return func(c *Config) {
		c.Megvii, c.Baidu, c.BaiduH5URL = v.megvii, v.baidu, v.baiduH5
		c.Idempotency = log.replica(t, func() time.Time { return now })
	}
}

func (f *fixture) issue(t *testing.T, route, key string, body any) resp {
	t.Helper()
	b, _ := json.Marshal(body)
	hdr := map[string]string{"Authorization": "Bearer " + bearer}
	if key != "" {
		hdr[IdempotencyKeyHeader] = key
	}
	return f.do(t, "POST", route, "application/json", b, hdr)
}

// jpegB64 returns the base64 of a w×h JPEG.
func jpegB64(t *testing.T, w, h int) string {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func (v *simVendors) getTokens() int { return v.sim.APICalls("megvii", megvii.EndpointGetToken) }
func (v *simVendors) generates() int { return v.sim.APICalls("baidu", baidu.EndpointGenerate) }

// blockingPublisher holds every publish until released and remembers what
// it stored.
type blockingPublisher struct {
	memPublisher
	entered chan struct{}
	release chan error
}

func (p *blockingPublisher) WriteMessages(ctx context.Context, msgs ...contract.Message) error {
	p.entered <- struct{}{}
	if err := <-p.release; err != nil {
		return err
	}
	return p.memPublisher.WriteMessages(ctx, msgs...)
}

// TestIssuedTokenRegisteredBeforeAnswer: the answer waits for the
// registration's publish; once it returns, the stored event names the
// token answered. When the publish fails, no token is given out.
func TestIssuedTokenRegisteredBeforeAnswer(t *testing.T) {
	v := newSimVendors(t)
	log := &memLog{}
	pub := &blockingPublisher{entered: make(chan struct{}), release: make(chan error)}
	f := newFixture(t, v.issuing(t, log))
	f.s.pub = pub
	answered := make(chan resp, 1)
	go func() {
		answered <- f.issue(t, RouteMegviiTokens, "k-1", map[string]any{"biz_no": "loan-1", "idcard_mode": 0})
	}()
	<-pub.entered
	select {
	case r := <-answered:
		t.Fatalf("answered %d before the registration was acknowledged: %s", r.code, r.raw)
	default: // the handler is inside the publish: it cannot have answered
	}
	pub.release <- nil
	r := <-answered
	if r.code != 200 {
		t.Fatalf("issue: %d %s", r.code, r.raw)
	}
	envs := pub.envelopes(t)
	if len(envs) != 1 || envs[0].Type != contract.TypeTokenRegistered || envs[0].Key != "megvii:"+r.body["biz_id"].(string) || r.body["key"] != envs[0].Key || r.body["id"] != envs[0].ID {
		t.Fatalf("answer %v, events %+v", r.body, envs)
	}
	var ev contract.Event
	if err := json.Unmarshal(envs[0].Value, &ev); err != nil || ev.BizNo != "loan-1" || ev.IssuedAt == nil || !ev.IssuedAt.Equal(now) {
		t.Fatalf("event %s: %v", envs[0].Value, err)
	}
	if tok, _ := r.body["token"].(string); tok == "" || r.body["url"] != v.megvii.DoURL(tok) || r.body["expired_time"].(float64) == 0 {
		t.Fatalf("answer %v", r.body)
	}

	// A failed registration: 503, no token in the answer, the key free again.
	go func() { answered <- f.issue(t, RouteBaiduTokens, "k-2", map[string]any{"plan_id": 7}) }()
	<-pub.entered
	pub.release <- errors.New("broker gone")
	r = <-answered
	if r.code != 503 || r.header.Get("Retry-After") == "" || strings.Contains(r.raw, "verify_token") || !strings.Contains(r.raw, "no token is given out") {
		t.Fatalf("failed registration answered %d %s", r.code, r.raw)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_issued_unregistered_total", map[string]string{"vendor": "baidu"}); got != 1 {
		t.Fatalf("unregistered counted %v", got)
	}
	// The retry calls the vendor again (nothing was given out) and succeeds.
	go func() { answered <- f.issue(t, RouteBaiduTokens, "k-2", map[string]any{"plan_id": 7}) }()
	<-pub.entered
	pub.release <- nil
	if r = <-answered; r.code != 200 || r.body["verify_token"] == nil || v.generates() != 2 {
		t.Fatalf("retry: %d %s (generate calls %d)", r.code, r.raw, v.generates())
	}
}

// TestIdempotencyKey: the same key and body return the same answer with one
// vendor call; another body is 422; without a key every request issues.
func TestIdempotencyKey(t *testing.T) {
	v := newSimVendors(t)
	log := &memLog{}
	f := newFixture(t, v.issuing(t, log))
	body := map[string]any{"biz_no": "loan-7", "return_url": "https://customer.example/kyc/done?x=1"}
	first := f.issue(t, RouteMegviiTokens, "order-7", body)
	second := f.issue(t, RouteMegviiTokens, "order-7", body)
	if first.code != 200 || second.code != 200 || first.raw != second.raw || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %d %s, second %d %s", first.code, first.raw, second.code, second.raw)
	}
	if n := v.getTokens(); n != 1 {
		t.Fatalf("%d get_token calls for one key", n)
	}
	if n := len(f.pub.envelopes(t)); n != 1 {
		t.Fatalf("%d registrations", n)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_idempotent_replays_total", map[string]string{"vendor": "megvii"}); got != 1 {
		t.Fatalf("replays %v", got)
	}
	other := f.issue(t, RouteMegviiTokens, "order-7", map[string]any{"biz_no": "loan-8"})
	if other.code != 422 || v.getTokens() != 1 {
		t.Fatalf("same key, other body: %d %s", other.code, other.raw)
	}
	// The same key on the other route is another key.
	if r := f.issue(t, RouteBaiduTokens, "order-7", map[string]any{"plan_id": "1"}); r.code != 200 {
		t.Fatalf("baidu with the key: %d %s", r.code, r.raw)
	}
	for range 2 {
		if r := f.issue(t, RouteMegviiTokens, "", body); r.code != 200 {
			t.Fatalf("no key: %d %s", r.code, r.raw)
		}
	}
	if n := v.getTokens(); n != 3 {
		t.Fatalf("%d get_token calls, want 3", n)
	}
}

// TestIdempotencyAcrossReplicas: two replicas reading one log; a request
// in progress on one holds the key (409 on the other), then the other
// answers the first one's token, with one vendor call in all.
func TestIdempotencyAcrossReplicas(t *testing.T) {
	v := newSimVendors(t)
	log := &memLog{}
	a := newFixture(t, v.issuing(t, log))
	b := newFixture(t, v.issuing(t, log))
	pub := &blockingPublisher{entered: make(chan struct{}), release: make(chan error)}
	a.s.pub = pub
	body := map[string]any{"plan_id": "42", "biz_no": "loan-b"}
	answered := make(chan resp, 1)
	go func() { answered <- a.issue(t, RouteBaiduTokens, "retry-me", body) }()
	<-pub.entered // replica a called the vendor and is registering
	if r := b.issue(t, RouteBaiduTokens, "retry-me", body); r.code != 409 || r.header.Get("Retry-After") == "" {
		t.Fatalf("replica b while a is in progress: %d %s", r.code, r.raw)
	}
	pub.release <- nil
	ra := <-answered
	rb := b.issue(t, RouteBaiduTokens, "retry-me", body)
	if ra.code != 200 || rb.code != 200 || ra.raw != rb.raw {
		t.Fatalf("a %d %s, b %d %s", ra.code, ra.raw, rb.code, rb.raw)
	}
	if n := v.generates(); n != 1 {
		t.Fatalf("%d verifyToken/generate calls", n)
	}
}

// TestIssueStrangersCostNothing: without a valid bearer token, 401 and no
// vendor call, no state, no event.
func TestIssueStrangersCostNothing(t *testing.T) {
	v := newSimVendors(t)
	log := &memLog{}
	f := newFixture(t, v.issuing(t, log))
	for _, route := range []string{RouteMegviiTokens, RouteBaiduTokens} {
		for _, auth := range []string{"", "Bearer wrong", "Basic " + bearer, bearer} {
			hdr := map[string]string{IdempotencyKeyHeader: "k"}
			if auth != "" {
				hdr["Authorization"] = auth
			}
			r := f.do(t, "POST", route, "application/json", []byte(`{"biz_no":"x","plan_id":"1"}`), hdr)
			if r.code != 401 || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s with %q: %d %s", route, auth, r.code, r.raw)
			}
		}
	}
	if v.getTokens()+v.generates() != 0 || log.count != 0 || len(f.pub.envelopes(t)) != 0 {
		t.Fatalf("strangers cost %d vendor calls, %d records, %d events", v.getTokens()+v.generates(), log.count, len(f.pub.envelopes(t)))
	}
}

// TestIssueBadInput: 400 naming the problem, before any vendor call.
func TestIssueBadInput(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	img := base64.StdEncoding.EncodeToString([]byte("jpeg"))
	for _, c := range []struct {
		route, body, want string
	}{
		{RouteMegviiTokens, `{}`, "biz_no: required"},
		{RouteMegviiTokens, `{"biz_no":"has space"}`, "biz_no"},
		{RouteMegviiTokens, `{"biz_no":"b","api_secret":"x"}`, "api_secret: not accepted"},
		{RouteMegviiTokens, `{"biz_no":"b","notify_url":"https://x.example"}`, "notify_url: not accepted"},
		{RouteMegviiTokens, `{"biz_no":"b","return_url":"javascript:alert(1)"}`, "return_url: want an absolute https URL"},
		{RouteMegviiTokens, `{"biz_no":"b","return_url":"http://customer.example/done"}`, "plain http only for loopback"},
		{RouteMegviiTokens, `{"biz_no":"b","return_url":"https://user:pw@customer.example/"}`, "return_url"},
		{RouteMegviiTokens, `{"biz_no":"b","idcard_mode":9}`, "idcard_mode: want 0 to 4"},
		{RouteMegviiTokens, `{"biz_no":"b","surprise":1}`, `unknown field "surprise"`},
		{RouteMegviiTokens, `[1]`, "want a JSON object"},
		{RouteBaiduTokens, `{}`, "plan_id: required"},
		{RouteBaiduTokens, `{"plan_id":"1","id_name":"张三"}`, "give both"},
		{RouteBaiduTokens, `{"plan_id":"1","id_name":"张三","id_no":"1","image":"` + img + `"}`, "not both"},
		{RouteBaiduTokens, `{"plan_id":"1","image":"%%%"}`, "image: want standard base64"},
		// 001 §3: 图片分辨率小于1920*1080.
		{RouteBaiduTokens, `{"plan_id":"1","image":"` + jpegB64(t, 2000, 600) + `"}`, "image: 2000x600 pixels"},
		{RouteBaiduTokens, `{"plan_id":"1","image":"` + jpegB64(t, 1080, 1920) + `"}`, "image: 1080x1920 pixels"},
		{RouteBaiduTokens, `{"plan_id":"1","image":"` + img + `","quality_control":"MAX"}`, "quality_control"},
		{RouteBaiduTokens, `{"plan_id":"1","failure_url":"ftp://x.example/"}`, "failure_url"},
		{RouteBaiduTokens, `{"plan_id":"1","verify_token":"t"}`, "verify_token: not accepted"},
	} {
		r := f.do(t, "POST", c.route, "application/json", []byte(c.body), map[string]string{"Authorization": "Bearer " + bearer})
		if msg, _ := r.body["error"].(string); r.code != 400 || !strings.Contains(msg, c.want) {
			t.Errorf("%s %s: %d %s, want 400 with %q", c.route, c.body, r.code, r.raw, c.want)
		}
	}
	if r := f.do(t, "POST", RouteBaiduTokens, "text/plain", []byte(`{"plan_id":"1"}`), map[string]string{"Authorization": "Bearer " + bearer}); r.code != 415 {
		t.Errorf("text/plain: %d", r.code)
	}
	if r := f.do(t, "POST", RouteBaiduTokens, "application/json", []byte(`{"plan_id":"1"}`), map[string]string{"Authorization": "Bearer " + bearer, IdempotencyKeyHeader: "has space"}); r.code != 400 {
		t.Errorf("bad key: %d", r.code)
	}
	if n := v.getTokens() + v.generates(); n != 0 {
		t.Fatalf("bad input cost %d vendor calls", n)
	}
}

// TestIssueVendorErrors: the simulator's rate limits become 429 with
// Retry-After, its faults 502, its refusals of parameters 400; each counted
// by class, nothing registered, and the key free for the retry.
func TestIssueVendorErrors(t *testing.T) {
	for _, c := range []struct {
		vendor, fault string
		code          int
		class         string
	}{
		{"megvii", vendorsim.FaultConcurrency, 429, "rate_limited"},
		{"megvii", vendorsim.FaultInternal, 502, "vendor_fault"},
		{"megvii", vendorsim.FaultHTML, 502, "vendor_fault"},
		{"megvii", vendorsim.FaultReset, 502, "vendor_fault"},
		{"megvii", vendorsim.FaultAuthorization, 502, "account"},
		{"baidu", vendorsim.FaultClusterLimit, 429, "rate_limited"},
		{"baidu", vendorsim.FaultInternal, 502, "vendor_fault"},
		{"baidu", vendorsim.FaultMalformed, 502, "vendor_fault"},
	} {
		t.Run(c.vendor+" "+c.fault, func(t *testing.T) {
			v := newSimVendors(t)
			f := newFixture(t, v.issuing(t, &memLog{}))
			route, body := RouteMegviiTokens, map[string]any{"biz_no": "b-1"}
			if c.vendor == "baidu" {
				route, body = RouteBaiduTokens, map[string]any{"plan_id": "1"}
			}
			if err := v.sim.QueueFault(c.vendor, c.fault, 1); err != nil {
				t.Fatal(err)
			}
			r := f.issue(t, route, "key-1", body)
			if r.code != c.code || !strings.Contains(r.raw, c.class) || strings.Contains(r.raw, `"token"`) {
				t.Fatalf("%d %s, want %d %s", r.code, r.raw, c.code, c.class)
			}
			if c.code == 429 && r.header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			if got := metricValue(t, f.reg, "faceharvest_ingest_issue_vendor_errors_total", map[string]string{"vendor": c.vendor, "class": c.class}); got != 1 {
				t.Fatalf("counted %v", got)
			}
			if n := len(f.pub.envelopes(t)); n != 0 {
				t.Fatalf("%d events for a failed issue", n)
			}
			if r := f.issue(t, route, "key-1", body); r.code != 200 {
				t.Fatalf("retry after the fault: %d %s", r.code, r.raw)
			}
		})
	}
}

// TestIssueBaidu: generate, then idcard/submit (or uploadMatchImage) in the
// same request; the H5 URL's pages are ingest's signed landings carrying
// the customer's pages, and landing on them redirects there.
func TestIssueBaidu(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	r := f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": 9, "biz_no": "loan-9", "id_name": "张三", "id_no": "500000199001013390", "certificate_type": 0,
		"success_url": "https://customer.example/ok?order=9", "failure_url": "https://customer.example/retry"})
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	vt := r.body["verify_token"].(string)
	if st, _ := v.sim.Baidu(vt); st.Calls[baidu.EndpointSubmit] != 1 {
		t.Fatalf("idcard/submit calls %v", st.Calls)
	}
	if strings.Contains(r.raw, "500000199001013390") || strings.Contains(f.logs.String(), "500000199001013390") {
		t.Fatal("the ID number left the request")
	}
	h5, err := url.Parse(r.body["url"].(string))
	if err != nil || h5.Query().Get("token") != vt || h5.Query().Get("successUrl") != r.body["success_url"] || h5.Query().Get("failedUrl") != r.body["failure_url"] {
		t.Fatalf("H5 URL %v", r.body["url"])
	}
	su, _ := url.Parse(r.body["success_url"].(string))
	// The simulated vendor appends verify_token to the page.
	land := f.do(t, "GET", su.RequestURI()+"&verify_token="+vt, "", nil, nil)
	if land.code != 303 || land.header.Get("Location") != "https://customer.example/ok?order=9" {
		t.Fatalf("landing: %d %v", land.code, land.header)
	}
	// Another page in a signed URL is a forgery.
	forged := strings.Replace(su.RequestURI(), url.QueryEscape("https://customer.example/ok?order=9"), url.QueryEscape("https://evil.example/"), 1)
	if land := f.do(t, "GET", forged, "", nil, nil); land.code != 401 {
		t.Fatalf("forged page: %d", land.code)
	}
	img := jpegB64(t, 480, 640)
	r = f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": "9", "image": img, "quality_control": "LOW"})
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	if st, _ := v.sim.Baidu(r.body["verify_token"].(string)); st.Calls[baidu.EndpointUploadMatch] != 1 {
		t.Fatalf("uploadMatchImage calls %v", st.Calls)
	}
	// Without pages: the landings go to the configured redirect.
	r = f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": "9"})
	su, _ = url.Parse(r.body["success_url"].(string))
	if land := f.do(t, "GET", su.RequestURI(), "", nil, nil); land.code != 303 || land.header.Get("Location") != "https://customer.example/kyc/done" {
		t.Fatalf("landing without a page: %d %v", land.code, land.header)
	}
}

// TestMegviiReturnLanding: get_token's return_url is ingest's signed
// landing; the browser's post of the vendor-signed data is recorded as the
// callback and sent on to the customer's page; an unsigned or altered
// landing, or another verification's data, is refused.
func TestMegviiReturnLanding(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	r := f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "loan-3", "return_url": "http://127.0.0.1:3000/kyc/done"})
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	bizID := r.body["biz_id"].(string)
	v.clk.Advance(time.Minute)
	data := v.sim.CallbackData(bizID)
	cb := signed(secretNew, data)
	ret := returnURLOf(t, v, bizID)
	if !strings.HasPrefix(ret, publicURL+RouteMegviiReturn+"?") {
		t.Fatalf("return_url %s", ret)
	}
	u, _ := url.Parse(ret)
	post := func(path string, body []byte) resp {
		return f.do(t, "POST", path, "application/x-www-form-urlencoded", body, nil)
	}
	before := len(f.pub.envelopes(t))
	if got := post(u.RequestURI(), cb.EncodeForm()); got.code != 303 || got.header.Get("Location") != "http://127.0.0.1:3000/kyc/done" {
		t.Fatalf("return landing: %d %v %s", got.code, got.header, got.raw)
	}
	envs := f.pub.envelopes(t)
	if len(envs) != before+1 || envs[len(envs)-1].Type != contract.TypeMegviiCallback || envs[len(envs)-1].Key != "megvii:"+bizID {
		t.Fatalf("events %+v", envs)
	}
	// The same body on notify_url is the same event.
	if got := post(RouteMegviiCallback, cb.EncodeForm()); got.code != 200 || got.body["id"] != envs[len(envs)-1].ID {
		t.Fatalf("notify: %d %s", got.code, got.raw)
	}
	for name, path := range map[string]string{
		"unsigned":     RouteMegviiReturn + "?biz_no=loan-3&to=" + url.QueryEscape("https://evil.example/"),
		"another page": strings.Replace(u.RequestURI(), url.QueryEscape("http://127.0.0.1:3000/kyc/done"), url.QueryEscape("https://evil.example/"), 1),
	} {
		if got := post(path, cb.EncodeForm()); got.code != 401 || got.header.Get("Location") != "" {
			t.Errorf("%s: %d %v", name, got.code, got.header)
		}
	}
	// A signed landing of another biz_no does not take this data.
	other := f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "loan-4", "return_url": "https://customer.example/x"})
	ou, _ := url.Parse(returnURLOf(t, v, other.body["biz_id"].(string)))
	if got := post(ou.RequestURI(), cb.EncodeForm()); got.code != 400 || got.header.Get("Location") != "" {
		t.Errorf("another verification's data: %d %s", got.code, got.raw)
	}
	// A bad vendor signature records nothing and redirects nowhere.
	if got := post(u.RequestURI(), signed("not-the-secret", data).EncodeForm()); got.code != 401 || got.header.Get("Location") != "" {
		t.Errorf("bad sign: %d", got.code)
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_megvii_return_landings_total", nil); got != 1 {
		t.Fatalf("return landings %v", got)
	}
}

// returnURLOf reads the return_url the simulator was given by get_token.
func returnURLOf(t *testing.T, v *simVendors, bizID string) string {
	t.Helper()
	u := v.sim.ReturnURL(bizID)
	if u == "" {
		t.Fatalf("no return_url for %s", bizID)
	}
	return u
}

// TestIssuingBounded: beyond MaxIssuing requests in progress, 503 at once,
// without a vendor call.
func TestIssuingBounded(t *testing.T) {
	v := newSimVendors(t)
	pub := &blockingPublisher{entered: make(chan struct{}), release: make(chan error)}
	f := newFixture(t, func(c *Config) {
		v.issuing(t, &memLog{})(c)
		c.MaxIssuing = 1
	})
	f.s.pub = pub
	answered := make(chan resp, 1)
	go func() { answered <- f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": "1"}) }()
	<-pub.entered
	r := f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": "1"})
	if r.code != 503 || r.header.Get("Retry-After") == "" || v.generates() != 1 {
		t.Fatalf("second issuing request: %d %s (generate calls %d)", r.code, r.raw, v.generates())
	}
	pub.release <- nil
	if r := <-answered; r.code != 200 {
		t.Fatalf("first: %d %s", r.code, r.raw)
	}
}

// TestIssuingNotConfigured: without a vendor's credentials its route is 404
// (after authentication); New refuses issuing without idempotency state.
func TestIssuingNotConfigured(t *testing.T) {
	f := newFixture(t, nil)
	if r := f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "b"}); r.code != 404 || !strings.Contains(r.raw, "not configured") {
		t.Fatalf("%d %s", r.code, r.raw)
	}
	v := newSimVendors(t)
	cfg := testConfig()
	cfg.LandingKeys, cfg.PublicURL, cfg.Megvii = []config.Secret{config.NewSecret(landingKeyNew)}, publicURL, v.megvii
	_, err := New(cfg, &memPublisher{})
	if err == nil || !strings.Contains(err.Error(), "idempotency") {
		t.Fatalf("New without idempotency: %v", err)
	}
}

// Documents 000 and 002 (Return_url 和 Notify_url 回调): FaceID calls a
// notify_url only on ports 443, 5000, 16003, 8883 and 8028. Ingest's
// notify_url is --public-url + /v1/callbacks/megvii, so New refuses a
// public URL on another port when it issues Megvii tokens.
func TestIssuingMegviiNotifyPort(t *testing.T) {
	v := newSimVendors(t)
	cfg := func(public string, megviiIssuing bool) Config {
		c := testConfig()
		c.LandingKeys, c.PublicURL, c.Baidu, c.BaiduH5URL = []config.Secret{config.NewSecret(landingKeyNew)}, public, v.baidu, v.baiduH5
		v.issuing(t, &memLog{})(&c)
		if !megviiIssuing {
			c.Megvii = nil
		}
		return c
	}
	for public, ok := range map[string]bool{
		"https://kyc.example.com":        true,
		"https://kyc.example.com:443/x":  true,
		"https://kyc.example.com:8028":   true,
		"https://kyc.example.com:16003":  true,
		"https://kyc.example.com:8443":   false,
		"http://kyc.example.com":         false, // port 80
		"http://127.0.0.1:40123":         true,  // development: the simulator calls any port
		"http://localhost:40123":         true,
		"https://kyc.example.com:008028": false,
	} {
		_, err := New(cfg(public, true), &memPublisher{})
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "8028")) {
			t.Errorf("%s: %v", public, err)
		}
	}
	if _, err := New(cfg("https://kyc.example.com:8443", false), &memPublisher{}); err != nil {
		t.Errorf("Baidu issuing only, any port: %v", err)
	}
}
