package vendorsim

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Document 000 on what an answer leaves out: idcard_info, liveness_result
// and verify_result are absent when the user interrupted the flow
// (CANCELLED, TIMEOUT: 如果用户中途中断了活体流程,则此字段也不返回);
// fail_reason comes only when get_fail_reason=1 was asked for. The same holds
// for the callback's data.
func TestMegviiInterruptedFlowsAndFailReason(t *testing.T) {
	for _, c := range []struct {
		name       string
		spec       MegviiSpec
		failReason string
	}{
		{"cancelled", MegviiSpec{FinalStatus: "CANCELLED"}, ""},
		{"timeout", MegviiSpec{FinalStatus: "TIMEOUT"}, ""},
		{"webrtc without get_fail_reason", MegviiSpec{FinalStatus: "WEBRTC_UNSUPPORTED"}, ""},
		{"webrtc with get_fail_reason=1", MegviiSpec{FinalStatus: "WEBRTC_UNSUPPORTED", GetFailReason: true, FailReason: "PERMISSIONS_ERROR"}, "PERMISSIONS_ERROR"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			c.spec.Quirks = noQuirks()
			id := h.createM(t, c.spec)
			h.clk.Advance(time.Minute)
			cb, err := megvii.ParseResult([]byte(h.sim.CallbackData(id)))
			if err != nil {
				t.Fatal(err)
			}
			r, err := h.megvii.GetResult(context.Background(), id, all)
			if err != nil {
				t.Fatal(err)
			}
			for name, r := range map[string]*megvii.Result{"get_result": r, "callback": cb} {
				if r.IDCardInfo != nil || r.LivenessResult != nil || r.VerifyResult != nil || bytes.Contains(r.Raw, []byte(`"idcard_info"`)) {
					t.Errorf("%s of an interrupted flow carries results: %s", name, r.Raw)
				}
				if r.FailReason != c.failReason || (c.failReason == "" && bytes.Contains(r.Raw, []byte("fail_reason"))) {
					t.Errorf("%s: fail_reason %q, want %q", name, r.FailReason, c.failReason)
				}
			}
		})
	}
}

// get_token's get_fail_reason=1 is what asks for fail_reason.
func TestMegviiGetTokenGetFailReason(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultMegvii.FinalStatus = "WEBRTC_UNSUPPORTED" })
	for _, ask := range []bool{false, true} {
		opts := map[string]string{}
		if ask {
			opts["get_fail_reason"] = "1"
		}
		tok, err := h.megvii.GetToken(context.Background(), megvii.TokenRequest{ReturnURL: "https://example.invalid/r", NotifyURL: "https://example.invalid/n", BizNo: "b", Options: opts})
		if err != nil {
			t.Fatal(err)
		}
		h.clk.Advance(time.Minute)
		r, err := megvii.ParseResult([]byte(h.sim.CallbackData(tok.BizID)))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: "", true: "NETWORK_ERROR"}[ask]; r.FailReason != want {
			t.Errorf("get_fail_reason=%v: fail_reason %q, want %q", ask, r.FailReason, want)
		}
	}
}

// The simulator's window is its own: MegviiWindowLead starts it before the
// token's issue, whatever a harvester assumes.
func TestMegviiWindowLead(t *testing.T) {
	for _, c := range []struct {
		after time.Duration
		want  string
	}{{21*time.Hour + 59*time.Minute, "OK"}, {22*time.Hour + time.Minute, "destroyed"}} {
		h := newHarness(t, func(cfg *Config) { cfg.MegviiWindowLead = 2 * time.Hour })
		id := h.createM(t, MegviiSpec{})
		h.clk.Advance(c.after)
		r, err := h.megvii.GetResult(context.Background(), id, all)
		got := ""
		if err != nil {
			got = vendorerr.ClassOf(err).String()
		} else {
			got = string(r.Status)
		}
		if got != c.want {
			t.Errorf("after %v: %s, want %s", c.after, got, c.want)
		}
	}
}
