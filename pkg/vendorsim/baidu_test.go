package vendorsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

func (h *harness) createB(t *testing.T, spec BaiduSpec) string {
	t.Helper()
	c, err := h.sim.CreateBaidu(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c.VerifyToken
}

func download(t *testing.T, u string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestBaiduFullFlow(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultBaidu.Media = "process_video" })
	ctx := context.Background()
	gen, err := h.baidu.GenerateVerifyToken(ctx, "plan-1")
	if err != nil {
		t.Fatal(err)
	}
	vt := gen.VerifyToken
	if _, err := h.baidu.SubmitIDCard(ctx, baidu.SubmitIDCard{VerifyToken: vt, IDName: "张三", IDNo: "110101199003070011"}); err != nil {
		t.Fatal(err)
	}
	img := base64.StdEncoding.EncodeToString(makeJPEG(baseJPEG(), "ref", 2000))
	if _, err := h.baidu.UploadMatchImage(ctx, baidu.UploadMatchImage{VerifyToken: vt, Image: img, QualityControl: "LOW"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.baidu.UploadMatchImage(ctx, baidu.UploadMatchImage{VerifyToken: vt, Image: "%%%"}); vendorerr.ClassOf(err) != vendorerr.CallerBug {
		t.Fatalf("bad image: %v", err)
	}
	// No query before the user acted (001): see TestBaiduQueryBeforeTheUserActed.
	h.clk.Advance(61 * time.Second)
	h.sim.DispatchDue(ctx)
	got := h.landing.received()
	if len(got) != 1 || got[0].Path != "/v1/callbacks/baidu/success" || got[0].Method != http.MethodGet {
		t.Fatalf("redirect %+v", got)
	}
	if q, _ := url.ParseQuery(got[0].Query); q.Get("verify_token") != vt {
		t.Fatalf("redirect query %q", got[0].Query)
	}
	d, err := h.baidu.ResultDetail(ctx, vt)
	if err != nil {
		t.Fatal(err)
	}
	if d.IDCardConfirm.Name != "张三" || d.VerifyResult.Score.Value == 0 {
		t.Fatalf("detail %+v", d)
	}
	front, err := base64.StdEncoding.Strict().DecodeString(d.IDCardImages.FrontBase64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jpeg.Decode(bytes.NewReader(front)); err != nil {
		t.Fatalf("front image: %v", err)
	}
	simple, err := h.baidu.ResultSimple(ctx, vt)
	if err != nil || !strings.HasPrefix(simple.Image, h.baiduURL) {
		t.Fatalf("simple %+v %v", simple, err)
	}
	st, err := h.baidu.ResultStat(ctx, vt)
	if err != nil || len(st.APIs) != 7 {
		t.Fatalf("stat %+v %v", st, err)
	}
	m, err := h.baidu.MediaQuery(ctx, vt)
	if err != nil || len(m.ProcessVideo) != 1 || len(m.Video) != 0 || len(m.Images) != 4 {
		t.Fatalf("media %+v %v", m, err)
	}
	code, ct, body := download(t, m.ProcessVideo[0])
	if code != 200 || ct != "video/mp4" || int64(len(body)) != MP4Size(300<<10) || http.DetectContentType(body) != "video/mp4" {
		t.Fatalf("video: %d %s %d", code, ct, len(body))
	}
	all, err := h.baidu.GetAll(ctx, vt)
	if err != nil || all.VerifyCount.Value != 1 || !all.Passed() || all.VerifyResult[0].IDCardImages == nil {
		t.Fatalf("getall %+v %v", all, err)
	}
	code, ct, body = download(t, all.VerifyResult[0].VerifyDetail.FaceImage)
	if code != 200 || ct != "image/jpeg" {
		t.Fatalf("face image %d %s", code, ct)
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	// One day on: media links answer 403; getall's images still work.
	h.clk.Advance(24*time.Hour + time.Second)
	if code, _, body := download(t, m.ProcessVideo[0]); code != 403 || !bytes.Contains(body, []byte("AccessDenied")) {
		t.Fatalf("expired video: %d %s", code, body)
	}
	if code, _, _ := download(t, all.VerifyResult[0].VerifyDetail.FaceImage); code != 200 {
		t.Fatalf("face image after a day: %d", code)
	}
	// Three days on: every query endpoint says the token is invalid or expired.
	h.clk.Advance(48 * time.Hour)
	for _, call := range []func() error{
		func() error { _, err := h.baidu.GetAll(ctx, vt); return err },
		func() error { _, err := h.baidu.ResultDetail(ctx, vt); return err },
		func() error { _, err := h.baidu.MediaQuery(ctx, vt); return err },
	} {
		if err := call(); vendorerr.ClassOf(err) != vendorerr.Destroyed || !strings.Contains(err.Error(), baidu.TokenInvalidMessage) {
			t.Fatalf("after 3 days: %v", err)
		}
	}
	// getall: the one before the expiry, then the expired one and the
	// client's one retry with a freshly minted access token (001's FAQ: the
	// same message answers a mismatched access_token).
	state, _ := h.sim.Baidu(vt)
	if state.Calls[baidu.EndpointGetAll] != 3 || state.Calls["media"] != 4 || !state.CallbackDelivered {
		t.Fatalf("state %+v", state)
	}
}

func TestBaiduOutcomes(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	failed := h.createB(t, BaiduSpec{Outcome: "failure", Attempts: 3, Media: "video"})
	never := h.createB(t, BaiduSpec{NeverCompletes: true})
	late := h.createB(t, BaiduSpec{CompleteAfter: Duration(3 * time.Hour)})
	none := h.createB(t, BaiduSpec{Media: "none"})
	h.clk.Advance(2 * time.Minute)
	h.sim.DispatchDue(ctx)
	got := h.landing.received()
	paths := map[string]string{}
	for _, g := range got {
		q, _ := url.ParseQuery(g.Query)
		paths[q.Get("verify_token")] = g.Path
	}
	// Attempts 0 s, 30 s and 60 s after the token ended: three failure
	// landings for failed (each delivered in its own dispatch), one success.
	for h.sim.DispatchDue(ctx) > 0 {
	}
	got = h.landing.received()
	count := map[string]int{}
	for _, g := range got {
		q, _ := url.ParseQuery(g.Query)
		paths[q.Get("verify_token")] = g.Path
		count[q.Get("verify_token")]++
	}
	if len(got) != 4 || count[failed] != 3 || paths[failed] != "/v1/callbacks/baidu/failure" || paths[none] != "/v1/callbacks/baidu/success" {
		t.Fatalf("redirects %+v", got)
	}
	if _, err := h.baidu.ResultDetail(ctx, failed); vendorerr.ClassOf(err) != vendorerr.NotVerified {
		t.Fatalf("failed detail: %v", err)
	}
	all, err := h.baidu.GetAll(ctx, failed)
	if err != nil || all.VerifyCount.Value != 3 || all.Passed() || all.VerifyResult[2].VerifyDetail.Score.Valid || all.VerifyChargeCount.Value != 0 {
		t.Fatalf("failed getall %+v %v", all, err)
	}
	m, err := h.baidu.MediaQuery(ctx, failed)
	if err != nil || len(m.Video) != 1 || len(m.ProcessVideo) != 0 {
		t.Fatalf("video media %+v", m)
	}
	if m, err := h.baidu.MediaQuery(ctx, none); err != nil || len(m.URLs()) != 0 {
		t.Fatalf("recording off: %+v %v", m, err)
	}
	h.clk.Advance(2 * time.Hour)
	for _, vt := range []string{never, late} {
		if _, err := h.baidu.GetAll(ctx, vt); vendorerr.ClassOf(err) != vendorerr.Destroyed {
			t.Fatalf("unused token after 2 h: %v", err)
		}
	}
	if _, err := h.baidu.GetAll(ctx, "no-such-token"); vendorerr.ClassOf(err) != vendorerr.Destroyed {
		t.Fatalf("unknown token: %v", err)
	}
}

func TestBaiduAccessTokens(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	vt := h.createB(t, BaiduSpec{})
	h.clk.Advance(time.Minute)
	if _, err := h.baidu.GetAll(ctx, vt); err != nil {
		t.Fatal(err)
	}
	h.sim.RevokeBaiduTokens() // 110 on the cached token: refreshed once, retried
	if _, err := h.baidu.GetAll(ctx, vt); err != nil {
		t.Fatal(err)
	}
	if h.baidu.Tokens().Mints() != 2 {
		t.Fatalf("mints %d", h.baidu.Tokens().Mints())
	}
	// A token past its 30 days answers 111 even when the client still trusts it.
	old := h.lastToken(t)
	h.clk.Advance(31 * 24 * time.Hour)
	stale := baiduCall(t, h, old, vt)
	if !strings.Contains(stale, `"error_code":111`) {
		t.Fatalf("expired token: %s", stale)
	}
	if !strings.Contains(baiduCall(t, h, "", vt), `"error_code":110`) {
		t.Fatal("missing token accepted")
	}
}

func (h *harness) lastToken(t *testing.T) string {
	tok, err := h.baidu.Tokens().Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func baiduCall(t *testing.T, h *harness, token, vt string) string {
	resp, err := http.Post(h.baiduURL+"/rpc/2.0/brain/solution/faceprint/result/getall?access_token="+url.QueryEscape(token), "application/json", strings.NewReader(`{"verify_token":"`+vt+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBaiduFaults(t *testing.T) {
	cases := []struct {
		fault string
		class vendorerr.Class
		code  string
	}{
		{FaultInternal, vendorerr.VendorFault, "2"},
		{FaultHTML, vendorerr.VendorFault, ""},
		{FaultReset, vendorerr.VendorFault, ""},
		{FaultMalformed, vendorerr.VendorFault, ""},
		{FaultConcurrency, vendorerr.RateLimited, "18"},
		{FaultClusterLimit, vendorerr.RateLimited, "4"},
		{FaultAuthorization, vendorerr.Account, "17"},
		{FaultQuota, vendorerr.Account, "19"},
		{FaultAuth, vendorerr.Unknown, ""}, // 110: the client mints a new token and succeeds
		{FaultSlow, vendorerr.Unknown, ""},
	}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			h := newHarness(t, nil)
			vt := h.createB(t, BaiduSpec{Faults: []string{c.fault}})
			h.clk.Advance(time.Minute)
			_, err := h.baidu.GetAll(context.Background(), vt)
			if vendorerr.ClassOf(err) != c.class {
				t.Fatalf("got %v", err)
			}
			if ve, ok := err.(*vendorerr.Error); ok && ve.Code != c.code {
				t.Fatalf("code %q", ve.Code)
			}
		})
	}
	h := newHarness(t, nil)
	vt := h.createB(t, BaiduSpec{Faults: []string{FaultTruncatedBase64}})
	h.clk.Advance(time.Minute)
	d, err := h.baidu.ResultDetail(context.Background(), vt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base64.StdEncoding.Strict().DecodeString(d.IDCardImages.FrontBase64); err == nil {
		t.Fatal("truncated base64 decoded")
	}
}

// The simulated grant accepts the credentials where the public document
// puts them (the query) and where the client sends them (a POST form body),
// and refuses a wrong secret either way.
func TestBaiduTokenGrantQueryOrBody(t *testing.T) {
	h := newHarness(t, nil)
	grant := func(secret string, inBody bool) int {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {bKey}, "client_secret": {secret}}
		var resp *http.Response
		var err error
		if inBody {
			resp, err = http.PostForm(h.baiduURL+"/oauth/2.0/token", v)
		} else {
			resp, err = http.Post(h.baiduURL+"/oauth/2.0/token?"+v.Encode(), "application/json", nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&a)
		if resp.StatusCode == http.StatusOK && a.AccessToken == "" {
			t.Fatalf("200 without an access_token")
		}
		return resp.StatusCode
	}
	for _, inBody := range []bool{false, true} {
		if code := grant(bSecret, inBody); code != http.StatusOK {
			t.Errorf("in body %v: HTTP %d, want 200", inBody, code)
		}
		if code := grant("wrong", inBody); code != http.StatusUnauthorized {
			t.Errorf("wrong secret, in body %v: HTTP %d, want 401", inBody, code)
		}
	}
}

// TestBaiduPagesSetAfterTheToken: the customer sets the success and failure
// pages after generating the token (ingest's signed landing URLs exist only
// once the token is registered). A page with a query keeps it, verify_token
// is appended with '&'; a verification created without pages redirects
// once they are set, and only once.
func TestBaiduPagesSetAfterTheToken(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BaiduSuccessURL, c.BaiduFailureURL = "", "" })
	ctx := context.Background()
	vt := h.createB(t, BaiduSpec{CompleteAfter: Duration(30 * time.Second)})
	late := h.createB(t, BaiduSpec{CompleteAfter: Duration(10 * time.Second), Outcome: "failure"})
	h.clk.Advance(20 * time.Second)
	h.sim.DispatchDue(ctx)
	if got := h.landing.received(); len(got) != 0 {
		t.Fatalf("redirected without a page: %+v", got)
	}
	land := h.landing.srv.URL
	body := `{"success_url":"` + land + `/v1/callbacks/baidu/success?verify_token=` + vt + `&sig=abc","failure_url":"` + land + `/v1/callbacks/baidu/failure?verify_token=` + vt + `&sig=def"}`
	resp, err := http.Post(h.controlURL+"/sim/baidu/verifications/"+vt+"/pages", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pages: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := h.sim.SetBaiduPages(late, "", land+"/v1/callbacks/baidu/failure?verify_token="+late+"&sig=ghi"); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.SetBaiduPages("nope", land+"/x", ""); err == nil {
		t.Fatal("pages of an unknown token accepted")
	}
	if err := h.sim.SetBaiduPages(vt, "javascript:alert(1)", ""); err == nil {
		t.Fatal("a non-http page accepted")
	}
	// The late one finished already: it redirects at once.
	h.sim.DispatchDue(ctx)
	h.clk.Advance(15 * time.Second)
	h.sim.DispatchDue(ctx)
	h.clk.Advance(time.Hour)
	h.sim.DispatchDue(ctx)
	got := h.landing.received()
	if len(got) != 2 {
		t.Fatalf("%d redirects: %+v", len(got), got)
	}
	want := map[string]string{
		"/v1/callbacks/baidu/failure": "verify_token=" + late + "&sig=ghi&verify_token=" + late,
		"/v1/callbacks/baidu/success": "verify_token=" + vt + "&sig=abc&verify_token=" + vt,
	}
	for _, r := range got {
		if want[r.Path] != r.Query {
			t.Fatalf("redirect to %s?%s, want ?%s", r.Path, r.Query, want[r.Path])
		}
	}
}

// TestBaiduPagesHook: Config.BaiduPages gives a verification without pages
// of its own its pages from its token, ahead of the configured defaults; a
// spec's own pages win.
func TestBaiduPagesHook(t *testing.T) {
	var land string
	h := newHarness(t, func(c *Config) {
		c.BaiduPages = func(vt string) (string, string) {
			return land + "/v1/callbacks/baidu/success?verify_token=" + vt + "&sig=s", land + "/v1/callbacks/baidu/failure?verify_token=" + vt + "&sig=f"
		}
	})
	land = h.landing.srv.URL
	vt := h.createB(t, BaiduSpec{CompleteAfter: Duration(10 * time.Second)})
	own := h.createB(t, BaiduSpec{CompleteAfter: Duration(10 * time.Second), SuccessURL: land + "/own"})
	h.clk.Advance(11 * time.Second)
	h.sim.DispatchDue(context.Background())
	got := map[string]string{}
	for _, r := range h.landing.received() {
		got[r.Path] = r.Query
	}
	if got["/v1/callbacks/baidu/success"] != "verify_token="+vt+"&sig=s&verify_token="+vt || got["/own"] != "verify_token="+own || len(got) != 2 {
		t.Fatalf("redirects %v", got)
	}
}

// TestBaiduQueryBeforeTheUserActed: 001 says 用户进行操作后再查询接口,否则生成
// Token无法生效. A query endpoint called before the user's first attempt
// ended spoils the token: no attempt, no landing, and after its two hours it
// answers as an unused token. A query after the first attempt harms nothing.
func TestBaiduQueryBeforeTheUserActed(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	early := h.createB(t, BaiduSpec{})
	patient := h.createB(t, BaiduSpec{})
	all, err := h.baidu.GetAll(ctx, early)
	if err != nil || all.VerifyCount.Value != 0 {
		t.Fatalf("early getall %+v %v", all, err)
	}
	h.clk.Advance(61 * time.Second)
	for h.sim.DispatchDue(ctx) > 0 {
	}
	got := h.landing.received()
	if len(got) != 1 || !strings.Contains(got[0].Query, patient) {
		t.Fatalf("landings %+v: want only the token nobody queried early", got)
	}
	if all, err := h.baidu.GetAll(ctx, early); err != nil || all.VerifyCount.Value != 0 {
		t.Fatalf("spoiled token after the user's time: %+v %v", all, err)
	}
	if all, err := h.baidu.GetAll(ctx, patient); err != nil || all.VerifyCount.Value != 1 || !all.Passed() {
		t.Fatalf("patient token: %+v %v", all, err)
	}
	h.clk.Advance(2 * time.Hour)
	if _, err := h.baidu.GetAll(ctx, early); vendorerr.ClassOf(err) != vendorerr.Destroyed {
		t.Fatalf("spoiled token after 2 h: %v", err)
	}
	if st, _ := h.sim.Baidu(early); st.Outcomes["queried_before_use"] != 1 {
		t.Fatalf("outcomes %+v", st.Outcomes)
	}
}

// TestBaiduAttemptsOverTime: with "URL stays valid on failure" a token
// carries several attempts (001); getall lists those ended so far, each
// failed one sends the browser to the failure page, and detail answers once
// one passed. Media recording is off by default (001: 视频录制功能默认不开启):
// media/query answers without video data.
func TestBaiduAttemptsOverTime(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	vt := h.createB(t, BaiduSpec{Attempts: 2, AttemptGap: Duration(20 * time.Minute), CompleteAfter: Duration(30 * time.Minute)})
	h.clk.Advance(10 * time.Minute) // attempt 1 ended: failed
	for h.sim.DispatchDue(ctx) > 0 {
	}
	if got := h.landing.received(); len(got) != 1 || got[0].Path != "/v1/callbacks/baidu/failure" {
		t.Fatalf("after attempt 1: %+v", got)
	}
	all, err := h.baidu.GetAll(ctx, vt)
	if err != nil || all.VerifyCount.Value != 1 || all.Passed() {
		t.Fatalf("getall after attempt 1: %+v %v", all, err)
	}
	if d := all.VerifyResult[0].VerifyDetail; d.LivenessScore.Value != 0 || d.SpoofingScore.Value != 0 {
		t.Fatalf("getall's reserved scores: %+v", d)
	}
	if _, err := h.baidu.ResultDetail(ctx, vt); vendorerr.ClassOf(err) != vendorerr.NotVerified {
		t.Fatalf("detail after a failed attempt: %v", err)
	}
	h.clk.Advance(20 * time.Minute) // attempt 2 ended: passed
	for h.sim.DispatchDue(ctx) > 0 {
	}
	if got := h.landing.received(); len(got) != 2 || got[1].Path != "/v1/callbacks/baidu/success" {
		t.Fatalf("after attempt 2: %+v", got)
	}
	all, err = h.baidu.GetAll(ctx, vt)
	if err != nil || all.VerifyCount.Value != 2 || !all.Passed() || all.VerifyResult[0].VerifyDetail.FaceImage == all.VerifyResult[1].VerifyDetail.FaceImage {
		t.Fatalf("getall after attempt 2: %+v %v", all, err)
	}
	if _, err := h.baidu.ResultDetail(ctx, vt); err != nil {
		t.Fatalf("detail after the passed attempt: %v", err)
	}
	m, err := h.baidu.MediaQuery(ctx, vt)
	if err != nil || len(m.URLs()) != 0 {
		t.Fatalf("media with recording off: %+v %v", m, err)
	}
}
