package vendorsim

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// get_token and verifyToken/generate are counted per call, and queued
// faults strike them before anything is issued.
func TestIssuingCallsCountedAndFaulted(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	tr := megvii.TokenRequest{ReturnURL: "https://app.example/r", NotifyURL: h.landing.srv.URL + "/n", BizNo: "b"}
	for _, c := range []struct {
		fault string
		class vendorerr.Class
	}{{FaultConcurrency, vendorerr.RateLimited}, {FaultInternal, vendorerr.VendorFault}, {FaultAuth, vendorerr.Account}} {
		if err := h.sim.QueueFault("megvii", c.fault, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := h.megvii.GetToken(ctx, tr); vendorerr.ClassOf(err) != c.class {
			t.Fatalf("%s: %v", c.fault, err)
		}
	}
	if _, err := h.megvii.GetToken(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if n, st := h.sim.APICalls("megvii", megvii.EndpointGetToken), h.sim.Stats(); n != 4 || st.MegviiVerifications != 1 || st.MegviiCalls["get_token"] != 4 {
		t.Fatalf("get_token calls %d, stats %+v", n, st)
	}
	if err := h.sim.QueueFault("baidu", FaultClusterLimit, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := h.baidu.GenerateVerifyToken(ctx, "1"); vendorerr.ClassOf(err) != vendorerr.RateLimited {
		t.Fatalf("generate under a limit: %v", err)
	}
	if _, err := h.baidu.GenerateVerifyToken(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	if n := h.sim.APICalls("baidu", baidu.EndpointGenerate); n != 2 {
		t.Fatalf("generate calls %d", n)
	}
}

// Opening the H5 URL sets the verification's pages, as the customer built
// them into it; the browser then lands there with verify_token appended.
func TestBaiduH5URLSetsPages(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BaiduSuccessURL, c.BaiduFailureURL = "", "" })
	vt, err := h.baidu.GenerateVerifyToken(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	page := h.landing.srv.URL + "/landing/success?sig=abc"
	resp, err := http.Get(baidu.H5URL(h.baiduURL+BaiduH5Path, vt.VerifyToken, page, h.landing.srv.URL+"/landing/failure"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("H5 page: %d", resp.StatusCode)
	}
	h.clk.Advance(2 * time.Minute)
	h.sim.DispatchDue(context.Background())
	got := h.landing.received()
	if len(got) != 1 || got[0].Path != "/landing/success" {
		t.Fatalf("landed %+v", got)
	}
	q, _ := url.ParseQuery(got[0].Query)
	if q.Get("sig") != "abc" || q.Get("verify_token") != vt.VerifyToken {
		t.Fatalf("query %s", got[0].Query)
	}
	if st, _ := h.sim.Baidu(vt.VerifyToken); st.H5Opened != 1 {
		t.Fatalf("state %+v", st)
	}
	if resp, _ := http.Get(h.baiduURL + BaiduH5Path + "?token=unknown"); resp.StatusCode != 400 {
		t.Fatalf("unknown token: %d", resp.StatusCode)
	}
}

// Document 000: return_url is called by POST through the page redirect,
// with the body notify_url gets.
func TestMegviiReturnURLPosted(t *testing.T) {
	h := newHarness(t, nil)
	tok, err := h.megvii.GetToken(context.Background(), megvii.TokenRequest{ReturnURL: h.landing.srv.URL + "/return?sig=1", NotifyURL: h.landing.srv.URL + "/notify", BizNo: "b-7"})
	if err != nil {
		t.Fatal(err)
	}
	h.clk.Advance(time.Minute)
	h.sim.DispatchDue(context.Background())
	got := h.landing.received()
	if len(got) != 2 {
		t.Fatalf("received %+v", got)
	}
	bodies := map[string]string{}
	for _, r := range got {
		if r.Method != "POST" {
			t.Fatalf("%s %s", r.Method, r.Path)
		}
		bodies[r.Path] = string(r.Body)
	}
	if bodies["/return"] == "" || bodies["/return"] != bodies["/notify"] {
		t.Fatalf("bodies %v", bodies)
	}
	if st, _ := h.sim.Megvii(tok.BizID); st.ReturnOutcome != "delivered" || !st.CallbackDelivered {
		t.Fatalf("state %+v", st)
	}
}
