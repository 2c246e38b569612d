package schedule

import (
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// TestMegviiLastChanceUnfinishedIsNotVerified: 000 says NOT_STARTED is a
// token whose flow was never begun and PROCESSING one under way, and that
// neither carries idcard_info, liveness_result or verify_result. A
// last-chance answer with either status means the user never finished: the
// outcome is not_verified (the flow status is kept as the vendor gave it).
func TestMegviiLastChanceUnfinishedIsNotVerified(t *testing.T) {
	p := Defaults()
	for _, status := range []string{"NOT_STARTED", "PROCESSING"} {
		s := build(p, e(token(contract.Megvii, 0)))
		now := s.NextAt       // the last chance
		s.FlowStatus = status // what the caller read from the answer
		cl, _ := p.Outcome(s, Result{Endpoint: "get_result", Recorded: true, Served: true, ReturnImage: 4}, now, nil)
		if cl == nil || cl.Outcome != contract.OutcomeNotVerified || !strings.Contains(cl.Reason, status) {
			t.Errorf("%s at the last chance: close %+v, want not_verified naming the status", status, cl)
		}
		if s.FlowStatus != status {
			t.Errorf("flow status %q, want %q kept", s.FlowStatus, status)
		}
	}
}

// TestBaiduUnnamedErrorsKeepAnOpenTokenPolled: the documents name no
// getall error codes; a 222xxx/223xxx (the face service's refusals) or a
// 216100/216101 answer while the token can still verify (its two hours, 001)
// must not end the harvest: a later attempt by the user is still polled.
func TestBaiduUnnamedErrorsKeepAnOpenTokenPolled(t *testing.T) {
	p := Defaults()
	for _, c := range []struct {
		code  string
		class vendorerr.Class
	}{{"222202", vendorerr.NotVerified}, {"223120", vendorerr.NotVerified}, {"216100", vendorerr.CallerBug}, {"216101", vendorerr.CallerBug}} {
		s := build(p, e(token(contract.Baidu, 0)), e(completion("failure", 10*time.Minute)))
		now := at(11 * time.Minute)
		cl, _ := p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Class: c.class, Code: c.code, Recorded: true, Message: "code " + c.code}, now, nil)
		if cl != nil {
			t.Errorf("%s: closed %+v with the token window open", c.code, cl)
			continue
		}
		// Until the token window ends getall is asked again; nothing else
		// is called before it answers.
		for n := 0; n < 50 && s.NextAt.Before(at(2*time.Hour)); n++ {
			a := p.Plan(s, s.NextAt)
			if a.Close != nil || len(a.Calls) == 0 || a.Calls[0] != baidu.EndpointGetAll {
				t.Fatalf("%s: at %s plan %+v, want getall polled", c.code, s.NextAt.Sub(t0), a)
			}
			if cl, _ := p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Class: c.class, Code: c.code, Recorded: true, Message: "code " + c.code}, s.NextAt, nil); cl != nil {
				t.Fatalf("%s: closed at %s: %+v", c.code, s.NextAt.Sub(t0), cl)
			}
		}
		a := p.Plan(s, s.NextAt)
		if len(a.Calls) == 0 || a.Calls[0] != baidu.EndpointGetAll || !s.NextAt.After(at(2*time.Hour)) {
			t.Errorf("%s: after the token window (%s): %+v, want one more getall", c.code, s.NextAt.Sub(t0), a)
		}
	}
}

// TestBaiduTokenInvalidIsNotAVerdict: 001's FAQ gives "Token无效或者已过期"
// for an unused token past its two hours, for data past its three days, and
// for a verify_token used with a mismatched access_token. After the token
// window, with no other answer, nothing says whether a verification
// happened: the outcome is lost with the reason, not not_verified (which
// takes a getall listing no attempt).
func TestBaiduTokenInvalidIsNotAVerdict(t *testing.T) {
	p := Defaults()
	s := build(p, e(token(contract.Baidu, 0)))
	cl, pause := p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Class: vendorerr.Destroyed, Recorded: true, Message: baidu.TokenInvalidMessage}, at(2*time.Hour+5*time.Minute), nil)
	if cl == nil || cl.Outcome != contract.OutcomeLost || !strings.Contains(cl.Reason, baidu.TokenInvalidMessage) || pause {
		t.Fatalf("token invalid after the window: %+v pause %v, want lost with the reason", cl, pause)
	}
	s = build(p, e(token(contract.Baidu, 0)))
	if cl, _ := p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 0}, at(2*time.Hour+5*time.Minute), nil); cl == nil || cl.Outcome != contract.OutcomeNotVerified {
		t.Fatalf("getall without attempts after the window: %+v, want not_verified", cl)
	}
}

// TestBaiduTokenInvalidAcrossVerificationsIsAnAccountFault: inside a data
// window (after a landing) the answer cannot be the data's expiry. For one
// verification it is retried with back-off (the client has already tried a
// fresh access_token), the vendor not paused; when it persists across
// BaiduTokenInvalidFaults verifications in a row, with no Baidu answer in
// between, it is the account's (keys of another application): the vendor is
// paused. Any answer ends the run.
func TestBaiduTokenInvalidAcrossVerificationsIsAnAccountFault(t *testing.T) {
	p := Defaults()
	p.BaiduTokenInvalidFaults = 3
	invalid := Result{Endpoint: baidu.EndpointGetAll, Class: vendorerr.Destroyed, Recorded: true, Message: baidu.TokenInvalidMessage}
	landed := func(id string) *State {
		_, tk := token(contract.Baidu, 0)
		_, cp := completion("success", 10*time.Minute)
		tk.VerificationID, cp.VerificationID = id, id
		return build(p, e(contract.TypeTokenRegistered, tk), e(contract.TypeBaiduCompletion, cp))
	}
	now := at(11 * time.Minute)
	a, b, c := landed("a"), landed("b"), landed("c")
	for i, s := range []*State{a, a, b} { // a twice: one verification
		cl, pause := p.Outcome(s, invalid, now, nil)
		if cl != nil || pause || !s.NextAt.After(now) {
			t.Fatalf("answer %d: close %+v pause %v next %s: want a later retry, no pause", i, cl, pause, s.NextAt.Sub(now))
		}
	}
	if cl, pause := p.Outcome(c, invalid, now, nil); cl != nil || !pause || !strings.Contains(c.LastError, "account") {
		t.Fatalf("third verification: close %+v pause %v (%s), want the vendor paused", cl, pause, c.LastError)
	}
	// An answer for any verification ends the run.
	d := landed("d")
	p.Outcome(d, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 1, AnyPassed: true}, now, nil)
	if _, pause := p.Outcome(landed("e"), invalid, now, nil); pause {
		t.Fatal("paused after an answer ended the run")
	}
}
