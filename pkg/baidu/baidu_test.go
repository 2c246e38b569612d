package baidu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// decodeExample runs an example body through the same path a live answer takes.
func decodeExample[T any](t *testing.T, name, endpoint string, set func(*T, Meta)) *T {
	t.Helper()
	raw := vendordocs.MustExample(name)
	env, e := Classify(endpoint, 200, raw)
	if e != nil {
		t.Fatalf("%s: %v", name, e)
	}
	var out T
	if string(env.Result) != "null" {
		if err := json.Unmarshal(env.Result, &out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	set(&out, Meta{Raw: raw, LogID: string(env.LogID)})
	return &out
}

func TestDocumentExamples(t *testing.T) {
	g := decodeExample(t, "baidu_verifytoken_generate.json", EndpointGenerate, func(v *VerifyToken, m Meta) { v.Meta = m })
	if g.VerifyToken != "Yz9rWITm4vak16PBAh5x8oG7" || g.LogID != "1814798895" {
		t.Errorf("generate %+v", g)
	}
	for _, n := range []string{"baidu_idcard_submit.json", "baidu_upload_match_image.json"} {
		if _, e := Classify(EndpointSubmit, 200, vendordocs.MustExample(n)); e != nil {
			t.Errorf("%s: %v", n, e)
		}
	}
	s := decodeExample(t, "baidu_result_simple.json", EndpointSimple, func(v *SimpleResult, m Meta) { v.Meta = m })
	if !strings.HasPrefix(s.Image, "https://brain.baidu.com/") {
		t.Errorf("simple %+v", s)
	}
	d := decodeExample(t, "baidu_result_detail.json", EndpointDetail, func(v *DetailResult, m Meta) { v.Meta = m })
	if d.VerifyResult.Score.Value != 93.7835 || d.VerifyResult.LivenessScore.Value != 0.9672966 || !d.VerifyResult.Spoofing.Valid ||
		d.IDCardOCRResult.IDCardNumber != "370***********5826" || d.IDCardOCRResult.IssueAuthority != "胶南市公安局" ||
		d.IDCardImages.FrontBase64 != "/9j/4AAQSkZJRgAB...." || d.IDCardConfirm.Name != "柴*" || d.LogID != "160931948204246" {
		t.Errorf("detail %+v", d)
	}
	st := decodeExample(t, "baidu_result_stat.json", EndpointStat, func(v *StatResult, m Meta) { v.Meta = m })
	if len(st.APIs) != 7 || st.APIs["OCR"][0].Count.Value != 2 || st.APIs["VerifySec"][0].ErrorCode != "0" {
		t.Errorf("stat %+v", st.APIs)
	}
	m := decodeExample(t, "baidu_result_media_query.json", EndpointMedia, func(v *MediaResult, m Meta) { v.Meta = m })
	if urls := m.URLs(); len(urls) != 3 || urls[0].Kind != MediaProcessVideo || urls[2].Kind != MediaImage || string(m.ExtInfo) != "null" {
		t.Errorf("media %+v", m.URLs())
	}
	a := decodeExample(t, "baidu_result_getall.json", EndpointGetAll, func(v *GetAllResult, m Meta) { v.Meta = m })
	if a.VerifyCount.Value != 1 || a.OCRChargeCount.Value != 1 || a.MatchChargeCount.Value != 1 || a.VerifyChargeCount.Value != 1 || len(a.VerifyResult) != 1 || !a.Passed() {
		t.Fatalf("getall %+v", a)
	}
	at := a.VerifyResult[0]
	if at.Order.Value != 1 || at.Code != "0" || at.ChargeType != "verify" || !at.IsOCRCharge.Value || at.OCRCount.Value != 2 ||
		at.VerifyDetail.Score.Value != 89.9 || at.VerifyDetail.Threshold.Value != 80 || at.VerifyDetail.RiskLevel != "1" || at.VerifyDetail.IsDemote.Value ||
		at.IDCardConfirm.IDCardType != "0" {
		t.Errorf("attempt %+v", at)
	}
	// The example nests idcard_ocr_result and idcard_images inside idcard_confirm.
	if at.IDCardOCRResult == nil || at.IDCardOCRResult.IDCardNumber != "36213219923232X" || at.IDCardImages == nil || at.IDCardImages.BackImage != "xxx.jpg" {
		t.Errorf("nested OCR/images lost: %+v %+v", at.IDCardOCRResult, at.IDCardImages)
	}
	vt, err := ParseTime(at.VerifyTime)
	if err != nil || vt.UTC().Hour() != 2 {
		t.Errorf("verify_time %v %v", vt, err)
	}
}

func TestQuirks(t *testing.T) {
	body := `{"success":"true","log_id":160931948204246,"result":{"verify_count":"2","ocr_charge_count":0,"match_charge_count":0,"verify_charge_count":1,
	"verify_result":[
	 {"order":1,"is_verify_passed":false,"code":223120,"message":"活体检测未通过","verify_time":"2023-6-20 18:00:00","is_charged":"false","charge_type":"verify","charge_time":"",
	  "verify_detail":{"face_image":"http://h/f1.jpg","verify_log_id":123,"score":"","threshold":"80","liveness_score":0},
	  "idcard_confirm":{"name":"张三","idcard_number":"36213219923232X","idcard_type":0},
	  "idcard_ocr_result":{"idcard_number":"X1"},"idcard_images":{"front_image":"http://h/front.jpg"}},
	 {"order":2,"is_verify_passed":true,"code":"0","message":"核验成功","verify_time":"2023-06-20 18:05:00","is_charged":true,"charge_type":"verify","charge_time":"2023-06-20 18:05:00",
	  "verify_detail":{"face_image":"http://h/f2.jpg","score":91.2,"threshold":80,"risk_level":3,"is_demote":"true"}}]}}`
	env, e := Classify(EndpointGetAll, 200, []byte(body))
	if e != nil {
		t.Fatal(e)
	}
	var g GetAllResult
	if err := json.Unmarshal(env.Result, &g); err != nil {
		t.Fatal(err)
	}
	a1, a2 := g.VerifyResult[0], g.VerifyResult[1]
	checks := []struct {
		name string
		ok   bool
	}{
		{"success as string", env.Success.Value},
		{"log_id as number", env.LogID == "160931948204246"},
		{"count as string", g.VerifyCount.Value == 2},
		{"code as number", a1.Code == "223120"},
		{"empty score absent", !a1.VerifyDetail.Score.Valid},
		{"threshold as string", a1.VerifyDetail.Threshold.Value == 80},
		{"verify_log_id as number", a1.VerifyDetail.VerifyLogID == "123"},
		{"sibling OCR kept", a1.IDCardOCRResult.IDCardNumber == "X1"},
		{"sibling images kept", a1.IDCardImages.FrontImage == "http://h/front.jpg"},
		{"bool as string", a2.VerifyDetail.IsDemote.Value},
		{"risk level as number", a2.VerifyDetail.RiskLevel == "3"},
		{"any attempt passed", g.Passed()},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("quirk not tolerated: %s", c.name)
		}
	}
	for _, s := range []string{"2023-6-20 18:00:00", "2023-06-20 18:00:00", "2023-6-20 18:00", "2023-6-20"} {
		if _, err := ParseTime(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseTime("yesterday"); err == nil {
		t.Error("yesterday parsed")
	}
}

func TestClassifyErrorCodes(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		class  vendorerr.Class
		code   string
	}{
		{"cluster limit", 200, `{"success":false,"code":4,"message":"Open api request limit reached","log_id":"1"}`, vendorerr.RateLimited, "4"},
		{"daily limit", 200, `{"success":false,"code":17,"message":"Open api daily request limit reached"}`, vendorerr.Account, "17"},
		{"qps", 200, `{"success":false,"code":18,"message":"Open api qps request limit reached"}`, vendorerr.RateLimited, "18"},
		{"total", 200, `{"success":false,"code":19,"message":"Open api total request limit reached"}`, vendorerr.Account, "19"},
		{"invalid param", 200, `{"success":false,"code":100,"message":"Invalid parameter"}`, vendorerr.CallerBug, "100"},
		{"token invalid", 200, `{"error_code":110,"error_msg":"Access token invalid or no longer valid"}`, vendorerr.Account, "110"},
		{"token expired", 200, `{"error_code":111,"error_msg":"Access token expired"}`, vendorerr.Account, "111"},
		{"verify token expired", 200, `{"success":false,"code":216901,"message":"Token无效或者已过期"}`, vendorerr.Destroyed, "216901"},
		{"verify token expired, no code", 200, `{"success":false,"message":"Token无效或者已过期"}`, vendorerr.Destroyed, ""},
		{"verification failed", 200, `{"success":false,"code":223120,"message":"活体检测未通过"}`, vendorerr.NotVerified, "223120"},
		{"unknown code", 200, `{"success":false,"code":282000,"message":"internal error"}`, vendorerr.VendorFault, "282000"},
		{"service unavailable", 200, `{"error_code":2,"error_msg":"Service temporarily unavailable"}`, vendorerr.VendorFault, "2"},
		{"false without code", 200, `{"success":false}`, vendorerr.VendorFault, ""},
		{"html 502", 502, `<html><body><h1>502 Bad Gateway</h1></body></html>`, vendorerr.VendorFault, ""},
		{"html 404", 404, `<html>not found</html>`, vendorerr.CallerBug, ""},
		{"truncated", 200, `{"success":true,"result":{"verify_count":1,"verify_res`, vendorerr.VendorFault, ""},
		{"document's stat example, verbatim", 200, string(vendordocs.MustExample("baidu_result_stat_verbatim.txt")), vendorerr.VendorFault, ""},
		{"empty", 200, ``, vendorerr.VendorFault, ""},
		{"success but 500", 500, `{"success":true}`, vendorerr.VendorFault, ""},
	}
	for _, c := range cases {
		_, e := Classify(EndpointGetAll, c.status, []byte(c.body))
		if e == nil || e.Class != c.class || e.Code != c.code {
			t.Errorf("%s: got %+v", c.name, e)
		}
	}
}

// tokenServer answers the token grant and one faceprint endpoint, counting mints.
type tokenServer struct {
	mints     atomic.Int32
	gate      chan struct{} // when non-nil, the grant waits for it
	rejectTok atomic.Value  // a token the endpoint answers with 111
	fail      atomic.Bool
	rejectAll atomic.Bool
	// foreignTok: a token the faceprint endpoint answers "Token无效或者已过期"
	// (001 FAQ: a verify_token used with a mismatched access_token); "*":
	// every token.
	foreignTok atomic.Value
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/2.0/token" {
		if s.gate != nil {
			<-s.gate
		}
		if s.fail.Load() {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"unknown client id"}`)
			return
		}
		if r.PostFormValue("client_secret") != "sk" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"Client authentication failed"}`)
			return
		}
		n := s.mints.Add(1)
		fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":2592000}`, n)
		return
	}
	if f, _ := s.foreignTok.Load().(string); f == "*" || f != "" && r.URL.Query().Get("access_token") == f {
		fmt.Fprint(w, `{"success":false,"code":216901,"message":"Token无效或者已过期","log_id":"8"}`)
		return
	}
	if bad, _ := s.rejectTok.Load().(string); s.rejectAll.Load() || bad != "" && r.URL.Query().Get("access_token") == bad {
		fmt.Fprint(w, `{"error_code":111,"error_msg":"Access token expired"}`)
		return
	}
	fmt.Fprintf(w, `{"success":true,"result":{"verify_token":%q},"log_id":"9"}`, r.URL.Query().Get("access_token"))
}

func newTestClient(t *testing.T, h http.Handler, now func() time.Time) *Client {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, APIKey: config.NewSecret("ak"), SecretKey: config.NewSecret("sk"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenSourceOneRefreshInFlight(t *testing.T) {
	ts := &tokenServer{gate: make(chan struct{})}
	c := newTestClient(t, ts, nil)
	var wg sync.WaitGroup
	toks := make([]string, 16)
	for i := range toks {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			toks[i], _ = c.Tokens().Token(context.Background())
		}(i)
	}
	close(ts.gate)
	wg.Wait()
	for _, tok := range toks {
		if tok != "tok-1" {
			t.Fatalf("got %q", tok)
		}
	}
	if ts.mints.Load() != 1 {
		t.Fatalf("%d grants for 16 concurrent callers", ts.mints.Load())
	}
}

func TestTokenSourceRefreshesBeforeExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := func() time.Time { return now }
	ts := &tokenServer{}
	c := newTestClient(t, ts, clk)
	steps := []struct {
		advance time.Duration
		want    string
	}{
		{0, "tok-1"},
		{28 * 24 * time.Hour, "tok-1"}, // 2 days left: still cached
		{36 * time.Hour, "tok-2"},      // inside the 24 h refresh margin
		{29*24*time.Hour - time.Minute, "tok-2"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		got, err := c.Tokens().Token(context.Background())
		if err != nil || got != s.want {
			t.Fatalf("after %s: %q %v", s.advance, got, err)
		}
	}
	// A failed refresh still serves a token inside its lifetime.
	ts.fail.Store(true)
	now = now.Add(12 * time.Hour)
	if got, err := c.Tokens().Token(context.Background()); err != nil || got != "tok-2" {
		t.Fatalf("failed refresh: %q %v", got, err)
	}
}

func TestRefreshOnceOn111(t *testing.T) {
	ts := &tokenServer{}
	c := newTestClient(t, ts, nil)
	if _, err := c.Tokens().Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.rejectTok.Store("tok-1")
	v, err := c.GenerateVerifyToken(context.Background(), "plan")
	if err != nil || v.VerifyToken != "tok-2" {
		t.Fatalf("got %+v %v", v, err)
	}
	// When every token is rejected, the error surfaces after exactly one refresh.
	ts.rejectAll.Store(true)
	before := ts.mints.Load()
	_, err = c.GenerateVerifyToken(context.Background(), "plan")
	if vendorerr.ClassOf(err) != vendorerr.Account || !strings.Contains(err.Error(), "111") {
		t.Fatalf("got %v", err)
	}
	if got := ts.mints.Load() - before; got != 1 {
		t.Fatalf("%d refreshes, want 1", got)
	}
}

// TestTokenInvalidRetriedWithAFreshAccessToken: 001's FAQ gives a
// verify_token used with a mismatched access_token the same answer as an
// expired one ("Token无效或者已过期"). Before the answer is believed, the
// call is made once more with a freshly minted access_token; only when that
// is answered the same does the error surface.
func TestTokenInvalidRetriedWithAFreshAccessToken(t *testing.T) {
	ts := &tokenServer{}
	c := newTestClient(t, ts, nil)
	if _, err := c.Tokens().Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts.foreignTok.Store("tok-1")
	g, err := c.GetAll(context.Background(), "vt")
	if err != nil || ts.mints.Load() != 2 {
		t.Fatalf("getall %+v, %v after %d mints: want an answer with the second access_token", g, err, ts.mints.Load())
	}
	ts.foreignTok.Store("*") // every access_token: the keys are another application's
	_, err = c.GetAll(context.Background(), "vt")
	if err == nil || !strings.Contains(err.Error(), TokenInvalidMessage) || ts.mints.Load() != 3 {
		t.Fatalf("persisting: %v after %d mints, want the answer after exactly one more mint", err, ts.mints.Load())
	}
}

func TestBadCredentialsNeverLeak(t *testing.T) {
	srv := httptest.NewServer(&tokenServer{})
	t.Cleanup(srv.Close)
	c, _ := New(Config{BaseURL: srv.URL, APIKey: config.NewSecret("ak"), SecretKey: config.NewSecret("very-secret-key")})
	_, err := c.GetAll(context.Background(), "vt")
	var e *vendorerr.Error
	if !errors.As(err, &e) || e.Class != vendorerr.Account || strings.Contains(err.Error(), "very-secret-key") {
		t.Fatalf("got %v", err)
	}
	// A transport failure's URL carries the secret; the error must not.
	srv.Close()
	c2, _ := New(Config{BaseURL: srv.URL, APIKey: config.NewSecret("ak"), SecretKey: config.NewSecret("very-secret-key")})
	_, err = c2.GetAll(context.Background(), "vt")
	if vendorerr.ClassOf(err) != vendorerr.VendorFault || strings.Contains(err.Error(), "very-secret-key") {
		t.Fatalf("got %v", err)
	}
}

// The H5 URL carries the token and the pages query-escaped, whatever query
// the pages have.
func TestH5URL(t *testing.T) {
	got := H5URL(DefaultH5URL, "vt-1", "https://kyc.example/ok?verify_token=x&sig=a+b", "")
	u, err := url.Parse(got)
	if err != nil || u.Host != "brain.baidu.com" || u.Path != "/face/print/" {
		t.Fatalf("%s: %v", got, err)
	}
	q := u.Query()
	if q.Get("token") != "vt-1" || q.Get("successUrl") != "https://kyc.example/ok?verify_token=x&sig=a+b" || q.Has("failedUrl") {
		t.Fatalf("query %v", q)
	}
	if got := H5URL("https://h5.example/p?plan=1", "t", "", ""); got != "https://h5.example/p?plan=1&token=t" {
		t.Fatalf("%s", got)
	}
}
