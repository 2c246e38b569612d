package vendorsim

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

var all = megvii.GetResultOptions{ReturnImage: megvii.ReturnImageAll, ReturnVerifyTime: true}

func (h *harness) createM(t *testing.T, spec MegviiSpec) string {
	t.Helper()
	c, err := h.sim.CreateMegvii(spec)
	if err != nil {
		t.Fatal(err)
	}
	return c.BizID
}

func (h *harness) stateM(t *testing.T, id string) VerificationState {
	t.Helper()
	st, ok := h.sim.Megvii(id)
	if !ok {
		t.Fatalf("no verification %s", id)
	}
	return st
}

func noQuirks() *bool { f := false; return &f }
func quirks() *bool   { f := true; return &f }

func TestMegviiHarvestOnceThenDestroyed(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	id := h.createM(t, MegviiSpec{BizNo: "order-1", Quirks: noQuirks()})
	h.clk.Advance(31 * time.Second)
	r, err := h.megvii.GetResult(ctx, id, all)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != megvii.StatusOK || r.BizInfo.BizID != id || r.BizInfo.BizNo != "order-1" || r.LivenessResult.Result != "PASS" || r.VerifyResult.ResultFaceID == nil {
		t.Fatalf("result %+v", r)
	}
	if _, ok := r.Extra["verify_time"]; !ok {
		t.Error("return_verify_time=1 gave no verify time")
	}
	if names := r.Images.Names(); len(names) != 3 {
		t.Fatalf("images %v", names)
	}
	for _, n := range r.Images.Names() {
		d, err := megvii.ParseDataURI(r.Images[n])
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.Decode()
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if _, err := jpeg.Decode(bytes.NewReader(b)); err != nil {
			t.Fatalf("%s is not a JPEG: %v", n, err)
		}
	}
	// Only the first call is valid (document 000).
	_, err = h.megvii.GetResult(ctx, id, all)
	if vendorerr.ClassOf(err) != vendorerr.Destroyed {
		t.Fatalf("second call: %v", err)
	}
	var ve *vendorerr.Error
	if !errors.As(err, &ve) || !strings.Contains(string(ve.Body), "DATA_DESTROYED") {
		t.Fatalf("destroyed answer not kept: %+v", ve)
	}
	st := h.stateM(t, id)
	if st.Served != 1 || st.Calls[megvii.EndpointGetResult] != 2 || st.Outcomes[megvii.ErrDataDestroyed] != 1 {
		t.Fatalf("state %+v", st)
	}
}

func TestMegviiScheduleAndWindows(t *testing.T) {
	cases := []struct {
		name    string
		spec    MegviiSpec
		cfg     func(*Config)
		advance time.Duration
		calls   int
		want    []string // per call: a status or an error class
	}{
		{"early call spends the budget on an unfinished flow", MegviiSpec{}, nil, 0, 2, []string{"NOT_STARTED", "destroyed"}},
		{"processing", MegviiSpec{}, nil, 10 * time.Second, 1, []string{"PROCESSING"}},
		{"past retention, nothing served", MegviiSpec{}, nil, 25 * time.Hour, 1, []string{"destroyed"}},
		{"budget of three (another crawled page)", MegviiSpec{}, func(c *Config) { c.MegviiCallBudget = 3 }, time.Minute, 4, []string{"OK", "OK", "OK", "destroyed"}},
		{"three-month retention (document 002)", MegviiSpec{}, func(c *Config) { c.MegviiRetention = 90 * 24 * time.Hour }, 30 * 24 * time.Hour, 1, []string{"OK"}},
		{"cancelled", MegviiSpec{FinalStatus: "CANCELLED"}, nil, time.Minute, 1, []string{"CANCELLED"}},
		{"never finishes", MegviiSpec{FinalStatus: "PROCESSING"}, nil, 23 * time.Hour, 1, []string{"PROCESSING"}},
		{"webrtc", MegviiSpec{FinalStatus: "WEBRTC_UNSUPPORTED", GetFailReason: true}, nil, time.Minute, 1, []string{"WEBRTC_UNSUPPORTED"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.cfg)
			id := h.createM(t, c.spec)
			h.clk.Advance(c.advance)
			for i := 0; i < c.calls; i++ {
				r, err := h.megvii.GetResult(context.Background(), id, all)
				got := ""
				if err != nil {
					got = vendorerr.ClassOf(err).String()
				} else {
					got = string(r.Status)
					if got != "OK" && len(r.Images) > 0 {
						t.Errorf("images returned with status %s", got)
					}
					if got == "WEBRTC_UNSUPPORTED" && r.FailReason != "NETWORK_ERROR" {
						t.Errorf("fail_reason %q", r.FailReason)
					}
					if (got == "NOT_STARTED" || got == "PROCESSING") && (r.LivenessResult != nil || r.VerifyResult != nil || r.IDCardInfo != nil) {
						t.Errorf("%s carries results", got)
					}
				}
				if got != c.want[i] {
					t.Fatalf("call %d: got %s, want %s", i+1, got, c.want[i])
				}
			}
		})
	}
}

func TestMegviiErrors(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.megvii.GetResult(ctx, "1462259901,unknown", all); vendorerr.ClassOf(err) != vendorerr.NotFound {
		t.Fatalf("unknown: %v", err)
	}
	bad, _ := megvii.New(megvii.Config{BaseURL: h.megviiURL, APIKey: config.NewSecret(mKey), APISecret: config.NewSecret("wrong-secret")})
	_, err := bad.GetResult(ctx, "x", all)
	if vendorerr.ClassOf(err) != vendorerr.Account || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("bad secret: %v", err)
	}
	wrongURL, _ := megvii.New(megvii.Config{BaseURL: h.megviiURL + "/v2", APIKey: config.NewSecret(mKey), APISecret: config.NewSecret(mSecret)})
	if _, err := wrongURL.GetResult(ctx, "x", all); vendorerr.ClassOf(err) != vendorerr.CallerBug {
		t.Fatalf("wrong URL: %v", err)
	}
	raw := []struct {
		query string
		code  int
		msg   string
	}{
		{"api_key=" + mKey + "&api_secret=" + mSecret, 400, "MISSING_ARGUMENTS: biz_id"},
		{"api_secret=" + mSecret + "&biz_id=x", 400, "MISSING_ARGUMENTS: api_key"},
		{"api_key=" + mKey + "&api_secret=" + mSecret + "&biz_id=x&return_image=9", 400, "BAD_ARGUMENTS: return_image"},
		{"api_key=" + mKey + "&api_secret=" + mSecret + "&biz_id=x&return_verify_time=yes", 400, "BAD_ARGUMENTS: return_verify_time"},
	}
	for _, c := range raw {
		resp, err := http.Get(h.megviiURL + "/faceid/lite/get_result?" + c.query)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		e := megvii.Classify(megvii.EndpointGetResult, resp.StatusCode, b)
		if resp.StatusCode != c.code || e == nil || e.Message != c.msg || e.Class != vendorerr.CallerBug {
			t.Errorf("%s: %d %s", c.query, resp.StatusCode, b)
		}
	}
}

func TestMegviiFaults(t *testing.T) {
	cases := []struct {
		fault   string
		class   vendorerr.Class // Unknown: the call succeeds
		spent   bool
		decodes bool
	}{
		{FaultInternal, vendorerr.VendorFault, false, true},
		{FaultHTML, vendorerr.VendorFault, false, true},
		{FaultReset, vendorerr.VendorFault, false, true},
		{FaultConcurrency, vendorerr.RateLimited, false, true},
		{FaultAuth, vendorerr.Account, false, true},
		{FaultAuthorization, vendorerr.Account, false, true},
		{FaultQuota, vendorerr.Account, false, true},
		{FaultMalformed, vendorerr.VendorFault, true, true},
		{FaultSlow, vendorerr.Unknown, true, true},
		{FaultTruncatedBase64, vendorerr.Unknown, true, false},
	}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			h := newHarness(t, nil)
			id := h.createM(t, MegviiSpec{Faults: []string{c.fault}})
			h.clk.Advance(time.Minute)
			r, err := h.megvii.GetResult(context.Background(), id, all)
			if vendorerr.ClassOf(err) != c.class {
				t.Fatalf("got %v", err)
			}
			if err == nil {
				d, _ := megvii.ParseDataURI(r.Images[megvii.ImageBest])
				if _, derr := d.Decode(); (derr == nil) != c.decodes {
					t.Fatalf("image decodes=%v", derr == nil)
				}
			}
			st := h.stateM(t, id)
			if (st.Served == 1) != c.spent {
				t.Fatalf("served %d", st.Served)
			}
			// A fault before serving leaves the one call for the retry.
			if !c.spent {
				if _, err := h.megvii.GetResult(context.Background(), id, all); err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
		})
	}
	// Vendor-wide queued faults and random rates.
	h := newHarness(t, func(c *Config) { c.Faults.Internal = 1 })
	if _, err := h.megvii.GetResult(context.Background(), h.createM(t, MegviiSpec{}), all); vendorerr.ClassOf(err) != vendorerr.VendorFault {
		t.Fatalf("rate 1: %v", err)
	}
	h = newHarness(t, nil)
	if err := h.sim.QueueFault("megvii", FaultConcurrency, 2); err != nil {
		t.Fatal(err)
	}
	id := h.createM(t, MegviiSpec{})
	h.clk.Advance(time.Minute)
	for i, want := range []vendorerr.Class{vendorerr.RateLimited, vendorerr.RateLimited, vendorerr.Unknown} {
		if _, err := h.megvii.GetResult(context.Background(), id, all); vendorerr.ClassOf(err) != want {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := h.sim.QueueFault("megvii", "meteor", 1); err == nil {
		t.Fatal("unknown fault accepted")
	}
}

func TestMegviiQuirksAndProcedures(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	q := h.createM(t, MegviiSpec{Quirks: quirks()})
	sel := h.createM(t, MegviiSpec{Procedure: "selfie", Quirks: noQuirks()})
	sel5 := h.createM(t, MegviiSpec{Procedure: "selfie", Quirks: noQuirks()})
	flash := h.createM(t, MegviiSpec{Procedure: "flash", IDCardMode: new(int), ComparisonError: "ID_NUMBER_NAME_NOT_MATCH"})
	h.clk.Advance(time.Minute)
	r, err := h.megvii.GetResult(ctx, q, all)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(r.Raw, []byte("idcard_uneditable_feild")) || !bytes.Contains(r.Raw, []byte("VIDOE_FORMAT_UNSUPPORTED")) || !bytes.Contains(r.Raw, []byte(`"data: image/jpeg;base64,`)) {
		t.Fatal("quirky payload lacks the documents' quirks")
	}
	if r.IDCardInfo.UneditableField == "" || r.LivenessResult.Details.Counters["VIDEO_FORMAT_UNSUPPORTED"] != 0 {
		t.Fatal("quirks not read")
	}
	if _, ok := r.LivenessResult.Details.Counters["VIDEO_FORMAT_UNSUPPORTED"]; !ok {
		t.Fatal("VIDOE counter lost")
	}
	r, err = h.megvii.GetResult(ctx, sel, all)
	if err != nil {
		t.Fatal(err)
	}
	if r.LivenessResult.ProcedureType != "selfie" || r.LivenessResult.Details.FaceFront == nil || !r.LivenessResult.FaceGenuineness.SelfieInconsistent.Valid {
		t.Fatalf("selfie %+v", r.LivenessResult)
	}
	// 000 and 002: 4 returns all images (需要返回所有图像): a selfie flow's
	// two selfies and the ID card's sides; image_best is video, still and
	// flash only (return_image 1).
	if names := strings.Join(r.Images.Names(), ","); names != "image_idcard_back,image_idcard_front,image_selfie_front,image_selfie_side" {
		t.Fatalf("selfie flow asked for 4: images %s", names)
	}
	r, err = h.megvii.GetResult(ctx, sel5, megvii.GetResultOptions{ReturnImage: megvii.ReturnImageSelfieFront})
	if err != nil {
		t.Fatal(err)
	}
	if names := strings.Join(r.Images.Names(), ","); names != "image_selfie_front" {
		t.Fatalf("selfie flow asked for 5: images %s", names)
	}
	r, err = h.megvii.GetResult(ctx, flash, megvii.GetResultOptions{ReturnImage: megvii.ReturnImageBest})
	if err != nil {
		t.Fatal(err)
	}
	if r.IDCardInfo != nil || r.LivenessResult.Details.Counters["LOW_BRIGHTNESS"] != 2 || *r.VerifyResult.ErrorMessage != "ID_NUMBER_NAME_NOT_MATCH" || !r.VerifyResult.Billed() || len(r.Images) != 1 {
		t.Fatalf("flash %+v %+v", r.LivenessResult, r.VerifyResult)
	}
}

func TestMegviiCallbacks(t *testing.T) {
	for _, format := range []string{"form", "json"} {
		t.Run(format, func(t *testing.T) {
			h := newHarness(t, nil)
			h.landing.statuses = []int{503} // the first delivery fails
			id := h.createM(t, MegviiSpec{CallbackFormat: format})
			noCb := h.createM(t, MegviiSpec{NoCallback: true})
			h.createM(t, MegviiSpec{FinalStatus: "PROCESSING"})
			if n := h.sim.DispatchDue(context.Background()); n != 0 {
				t.Fatalf("%d deliveries before the flow ended", n)
			}
			h.clk.Advance(30 * time.Second)
			if n := h.sim.DispatchDue(context.Background()); n != 1 {
				t.Fatalf("%d deliveries", n)
			}
			if st := h.stateM(t, id); st.CallbackDelivered || st.CallbackOutcome != "http_503" {
				t.Fatalf("after 503: %+v", st)
			}
			h.clk.Advance(5 * time.Second)
			h.sim.DispatchDue(context.Background())
			got := h.landing.received()
			if len(got) != 2 || got[1].Path != "/v1/callbacks/megvii" || got[1].Method != http.MethodPost {
				t.Fatalf("received %+v", got)
			}
			cb, err := megvii.DecodeCallback(got[1].ContentType, got[1].Body)
			if err != nil || cb.Format != format {
				t.Fatalf("decode: %v %s", err, cb.Format)
			}
			if _, err := megvii.VerifySignature(cb, []config.Secret{config.NewSecret("rotated"), config.NewSecret(mSecret)}); err != nil {
				t.Fatal(err)
			}
			r, err := cb.ParseData()
			if err != nil || r.BizInfo.BizID != id || r.Status != megvii.StatusOK || len(r.Images) != 0 {
				t.Fatalf("callback data %+v %v", r, err)
			}
			if st := h.stateM(t, id); !st.CallbackDelivered || st.CallbackTries != 2 || st.Calls[megvii.EndpointGetResult] != 0 {
				t.Fatalf("state %+v", st)
			}
			if st := h.stateM(t, noCb); st.CallbackTries != 0 {
				t.Fatalf("no_callback verification called back: %+v", st)
			}
			if h.sim.PendingDeliveries() != 0 {
				t.Fatalf("%d deliveries left", h.sim.PendingDeliveries())
			}
		})
	}
}

func TestMegviiGetToken(t *testing.T) {
	h := newHarness(t, nil)
	notify := h.landing.srv.URL + "/custom"
	tok, err := h.megvii.GetToken(context.Background(), megvii.TokenRequest{ReturnURL: "https://app.example/done", NotifyURL: notify, BizNo: "order-9", Options: map[string]string{"idcard_mode": "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.BizID == "" || tok.Token == "" || tok.ExpiredTime != t0.Add(24*time.Hour).Unix() {
		t.Fatalf("token %+v", tok)
	}
	h.clk.Advance(time.Minute)
	h.sim.DispatchDue(context.Background())
	got := h.landing.received()
	if len(got) != 1 || got[0].Path != "/custom" {
		t.Fatalf("callback to %+v", got)
	}
	v, _ := url.ParseQuery(string(got[0].Body))
	if !strings.Contains(v.Get("data"), "order-9") || strings.Contains(v.Get("data"), "idcard_info") {
		t.Fatalf("data %s", v.Get("data"))
	}
	if _, err := h.megvii.GetToken(context.Background(), megvii.TokenRequest{BizNo: "x"}); vendorerr.ClassOf(err) != vendorerr.CallerBug {
		t.Fatalf("missing notify_url: %v", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MegviiLimits.Concurrency = 2 })
	h.sim.hold = make(chan struct{})
	ids := []string{h.createM(t, MegviiSpec{}), h.createM(t, MegviiSpec{}), h.createM(t, MegviiSpec{})}
	h.clk.Advance(time.Minute)
	errs := make(chan error, 2)
	for _, id := range ids[:2] {
		go func(id string) {
			_, err := h.megvii.GetResult(context.Background(), id, all)
			errs <- err
		}(id)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for h.sim.Inflight("megvii") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("requests never reached the simulator")
		}
		time.Sleep(time.Millisecond)
	}
	_, err := h.megvii.GetResult(context.Background(), ids[2], all)
	if vendorerr.ClassOf(err) != vendorerr.RateLimited {
		t.Fatalf("third concurrent call: %v", err)
	}
	close(h.sim.hold)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if st := h.stateM(t, ids[2]); st.Served != 0 || st.Outcomes[megvii.ErrConcurrencyLimitExceeded] != 1 {
		t.Fatalf("rejected call spent the budget: %+v", st)
	}
}

func TestQPSLimit(t *testing.T) {
	real := time.Unix(0, 0)
	h := newHarness(t, func(c *Config) {
		c.BaiduLimits.QPS = 2
		c.RealNow = func() time.Time { return real }
	})
	vt, _ := h.sim.CreateBaidu(BaiduSpec{})
	h.clk.Advance(time.Minute)
	var got []vendorerr.Class
	for i := 0; i < 3; i++ {
		_, err := h.baidu.GetAll(context.Background(), vt.VerifyToken)
		got = append(got, vendorerr.ClassOf(err))
	}
	real = real.Add(time.Second)
	_, err := h.baidu.GetAll(context.Background(), vt.VerifyToken)
	got = append(got, vendorerr.ClassOf(err))
	want := []vendorerr.Class{vendorerr.Unknown, vendorerr.Unknown, vendorerr.RateLimited, vendorerr.Unknown}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("calls: %v, want %v", got, want)
		}
	}
}

// TestMegviiCallbackWithoutProcedureType: 002's liveness_result table and its
// selfie and video examples carry no procedure_type, so a verification with
// 002's template sends callbacks without it (its get_result answer keeps
// it); the procedure is still told by the details' shape.
func TestMegviiCallbackWithoutProcedureType(t *testing.T) {
	h := newHarness(t, nil)
	for _, c := range []struct{ procedure, want string }{{"selfie", "selfie"}, {"video", megvii.ProcedureVideoOrStill}} {
		id := h.createM(t, MegviiSpec{Procedure: c.procedure, Quirks: quirks()})
		data := h.sim.CallbackData(id)
		if strings.Contains(data, "procedure_type") {
			t.Fatalf("%s: 002-style callback carries procedure_type: %s", c.procedure, data)
		}
		if got := megvii.ProcedureType([]byte(data)); got != c.want {
			t.Errorf("%s: procedure read from the callback %q, want %q", c.procedure, got, c.want)
		}
		plain := h.createM(t, MegviiSpec{Procedure: c.procedure, Quirks: noQuirks()})
		if d := h.sim.CallbackData(plain); !strings.Contains(d, `"procedure_type":"`+c.procedure+`"`) {
			t.Errorf("%s: 000-style callback lacks procedure_type: %s", c.procedure, d)
		}
	}
}
