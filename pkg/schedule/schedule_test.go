package schedule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

var t0 = time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func token(v contract.Vendor, issued time.Duration) (string, contract.Event) {
	i := at(issued)
	return contract.TypeTokenRegistered, contract.Event{Vendor: v, VerificationID: "v1", IssuedAt: &i, ReceivedAt: at(issued + time.Second)}
}

func callback(status string, recv time.Duration) (string, contract.Event) {
	return contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "v1", Status: status, ReceivedAt: at(recv)}
}

func completion(outcome string, recv time.Duration) (string, contract.Event) {
	return contract.TypeBaiduCompletion, contract.Event{Vendor: contract.Baidu, VerificationID: "v1", Status: outcome, ReceivedAt: at(recv)}
}

type ev struct {
	typ string
	e   contract.Event
}

func build(p Policy, evs ...ev) *State {
	var s *State
	for _, e := range evs {
		s = p.Apply(s, e.typ, e.e)
	}
	return s
}

func e(typ string, x contract.Event) ev { return ev{typ, x} }

func TestMegviiScheduleRules(t *testing.T) {
	p := Defaults()
	cases := []struct {
		name     string
		events   []ev
		next     time.Duration // expected NextAt offset
		deadline time.Duration
	}{
		{"final callback: due now", []ev{e(token(contract.Megvii, 0)), e(callback("OK", 3*time.Minute))}, 3 * time.Minute, 24 * time.Hour},
		{"every final status is final", []ev{e(token(contract.Megvii, 0)), e(callback("WEBRTC_UNSUPPORTED", time.Minute))}, time.Minute, 24 * time.Hour},
		{"token without callback: last chance only", []ev{e(token(contract.Megvii, 0))}, 24*time.Hour - 30*time.Minute, 24 * time.Hour},
		{"PROCESSING callback does not make it due", []ev{e(token(contract.Megvii, 0)), e(callback("PROCESSING", time.Minute))}, 24*time.Hour - 30*time.Minute, 24 * time.Hour},
		{"callback without token: window from receipt", []ev{e(callback("OK", 10*time.Minute))}, 10 * time.Minute, 24*time.Hour + 10*time.Minute},
		{"late registration keeps the earlier issue time", []ev{e(callback("CANCELLED", 10*time.Minute)), e(token(contract.Megvii, 0))}, 10 * time.Minute, 24 * time.Hour},
		{"a duplicate final callback changes nothing", []ev{e(token(contract.Megvii, 0)), e(callback("OK", time.Minute)), e(callback("OK", time.Hour))}, time.Minute, 24 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := build(p, c.events...)
			if !s.NextAt.Equal(at(c.next)) || !p.Deadline(s).Equal(at(c.deadline)) {
				t.Fatalf("next %s deadline %s", s.NextAt.Sub(t0), p.Deadline(s).Sub(t0))
			}
			if a := p.Plan(s, at(c.next-time.Second)); a.Wait.IsZero() {
				t.Fatalf("a call before it is due: %+v", a)
			}
			if a := p.Plan(s, at(c.next)); len(a.Calls) != 1 || a.Calls[0] != megvii.EndpointGetResult {
				t.Fatalf("plan at due time: %+v", a)
			}
		})
	}
	// Configured budget and window (document 002: three months, unlimited).
	p2 := p
	p2.MegviiRetention, p2.MegviiLastChance = 90*24*time.Hour, time.Hour
	s := build(p2, e(token(contract.Megvii, 0)))
	if !s.NextAt.Equal(at(90*24*time.Hour - time.Hour)) {
		t.Fatalf("configured window: %s", s.NextAt.Sub(t0))
	}
}

func TestMegviiOutcomes(t *testing.T) {
	p := Defaults()
	cases := []struct {
		name    string
		result  Result
		outcome string // "" = not closed
		retry   bool
		pause   bool
	}{
		{"harvested", Result{Recorded: true, Served: true, ResponseID: "r"}, contract.OutcomeHarvested, false, false},
		{"not found", Result{Class: vendorerr.NotFound, Recorded: true}, contract.OutcomeNotFound, false, false},
		{"destroyed", Result{Class: vendorerr.Destroyed, Recorded: true}, contract.OutcomeLost, false, false},
		{"rate limited: retry soon", Result{Class: vendorerr.RateLimited}, "", false, false},
		{"internal error: retry", Result{Class: vendorerr.VendorFault, Recorded: true}, "", true, false},
		{"reset, nothing recorded: retry", Result{Class: vendorerr.VendorFault}, "", true, false},
		{"malformed 200 spends the budget: no second call", Result{Class: vendorerr.VendorFault, Recorded: true, Served: true}, contract.OutcomeFailed, false, false},
		{"credentials: pause the vendor, keep the verification", Result{Class: vendorerr.Account}, "", false, true},
		{"our bug: retry within the window", Result{Class: vendorerr.CallerBug}, "", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := build(p, e(token(contract.Megvii, 0)), e(callback("OK", time.Minute)))
			now := at(time.Minute)
			cl, pause := p.Outcome(s, c.result, now, nil)
			got := ""
			if cl != nil {
				got = cl.Outcome
			}
			if got != c.outcome || pause != c.pause {
				t.Fatalf("close %+v pause %v", cl, pause)
			}
			if c.retry && !s.NextAt.Equal(now.Add(p.RetryMin)) {
				t.Fatalf("retry at %s", s.NextAt.Sub(now))
			}
			if c.result.Class == vendorerr.RateLimited && (!s.NextAt.Equal(now.Add(p.RateLimitRetry)) || s.Failures != 0) {
				t.Fatalf("rate-limit retry at %s, failures %d", s.NextAt.Sub(now), s.Failures)
			}
		})
	}
}

func TestBackoffBoundedByDeadline(t *testing.T) {
	p := Defaults()
	s := build(p, e(token(contract.Megvii, 0)), e(callback("OK", time.Minute)))
	now := at(time.Minute)
	var gaps []time.Duration
	for i := 0; i < 8; i++ {
		prev := now
		p.Outcome(s, Result{Class: vendorerr.VendorFault, Message: "HTTP 500"}, now, nil)
		gaps = append(gaps, s.NextAt.Sub(prev))
		now = s.NextAt
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 300, 300}
	for i := range want {
		if gaps[i] != want[i]*time.Second {
			t.Fatalf("gaps %v", gaps)
		}
	}
	// Near the deadline the last try is just before it; past it, expired.
	now = at(24*time.Hour - 2*time.Minute)
	p.Outcome(s, Result{Class: vendorerr.VendorFault, Message: "HTTP 500"}, now, nil)
	if !s.NextAt.Equal(at(24*time.Hour - time.Second)) {
		t.Fatalf("last try at %s", s.NextAt.Sub(t0))
	}
	a := p.Plan(s, at(24*time.Hour))
	if a.Close == nil || a.Close.Outcome != contract.OutcomeExpired || !strings.Contains(a.Close.Reason, "HTTP 500") {
		t.Fatalf("past the deadline: %+v", a)
	}
	if j := p.Jitter("megvii:x", 1); j < 0 || j >= p.RetryMin/5 || j != p.Jitter("megvii:x", 1) {
		t.Fatalf("jitter %s", j)
	}
}

func TestPastDeadlineClosesWithoutACall(t *testing.T) {
	p := Defaults()
	s := build(p, e(token(contract.Megvii, 0)), e(callback("OK", time.Minute)))
	a := p.Plan(s, at(25*time.Hour))
	if a.Close == nil || a.Close.Outcome != contract.OutcomeExpired || len(a.Calls) != 0 {
		t.Fatalf("%+v", a)
	}
}

func TestBaiduScheduleRules(t *testing.T) {
	p := Defaults()
	// Completion: everything due now; media's one day is the deadline.
	s := build(p, e(token(contract.Baidu, 0)), e(completion("success", 10*time.Minute)))
	if !s.NextAt.Equal(at(10*time.Minute)) || !p.Deadline(s).Equal(at(10*time.Minute+24*time.Hour)) {
		t.Fatalf("completion: next %s deadline %s", s.NextAt.Sub(t0), p.Deadline(s).Sub(t0))
	}
	a := p.Plan(s, at(10*time.Minute))
	if strings.Join(a.Calls, ",") != "result/getall,result/detail,result/media/query" {
		t.Fatalf("calls %v", a.Calls)
	}
	// Without completion: poll after the token window, then not verified.
	s = build(p, e(token(contract.Baidu, 0)))
	if !s.NextAt.Equal(at(2*time.Hour + 5*time.Minute)) {
		t.Fatalf("poll at %s", s.NextAt.Sub(t0))
	}
	cl, _ := p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 0}, at(2*time.Hour+5*time.Minute), nil)
	if cl == nil || cl.Outcome != contract.OutcomeNotVerified {
		t.Fatalf("no attempt: %+v", cl)
	}
	s = build(p, e(token(contract.Baidu, 0)))
	cl, _ = p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Class: vendorerr.Destroyed, Recorded: true, Message: baidu.TokenInvalidMessage}, at(3*time.Hour), nil)
	if cl == nil || cl.Outcome != contract.OutcomeLost { // not a verdict (001's FAQ): TestBaiduTokenInvalidIsNotAVerdict
		t.Fatalf("token invalid after the window: %+v", cl)
	}
	// A poll that finds attempts learns the completion from them.
	s = build(p, e(token(contract.Baidu, 0)))
	done := at(90 * time.Minute)
	cl, _ = p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 2, LastVerified: &done, AnyPassed: false}, at(2*time.Hour+5*time.Minute), nil)
	if cl != nil || !s.CompletedAt.Equal(done) || s.FlowStatus != "failure" {
		t.Fatalf("attempts found: %+v %+v", cl, s)
	}
	a = p.Plan(s, at(2*time.Hour+5*time.Minute))
	if strings.Join(a.Calls, ",") != "result/media/query" {
		t.Fatalf("after a failed attempt only media remains: %v", a.Calls)
	}
	p.Outcome(s, Result{Endpoint: baidu.EndpointMedia, Recorded: true}, at(2*time.Hour+6*time.Minute), nil)
	if a = p.Plan(s, at(2*time.Hour+6*time.Minute)); a.Close == nil || a.Close.Outcome != contract.OutcomeHarvested {
		t.Fatalf("all endpoints done: %+v", a)
	}
	// Media window passed: skipped with a reason, results still harvested.
	s = build(p, e(token(contract.Baidu, 0)), e(completion("success", 0)))
	p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 1, AnyPassed: true}, at(25*time.Hour), nil)
	p.Outcome(s, Result{Endpoint: baidu.EndpointDetail, Recorded: true}, at(25*time.Hour), nil)
	a = p.Plan(s, at(25*time.Hour))
	if a.Close == nil || a.Close.Outcome != contract.OutcomeHarvested || !strings.Contains(s.LastError, "media window") {
		t.Fatalf("media expired: %+v %s", a, s.LastError)
	}
	// detail answering "not verified" is an answer, not a failure.
	s = build(p, e(token(contract.Baidu, 0)), e(completion("failure", 0)))
	p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 1, AnyPassed: true}, at(time.Minute), nil)
	cl, _ = p.Outcome(s, Result{Endpoint: baidu.EndpointDetail, Class: vendorerr.NotVerified, Recorded: true}, at(time.Minute), nil)
	if cl != nil || p.Plan(s, at(time.Minute)).Calls[0] != baidu.EndpointMedia {
		t.Fatalf("detail not verified: %+v", cl)
	}
	// Switches.
	p2 := p
	p2.BaiduDetail, p2.BaiduMedia = false, false
	s = build(p2, e(token(contract.Baidu, 0)), e(completion("success", 0)))
	if a = p2.Plan(s, at(0)); strings.Join(a.Calls, ",") != "result/getall" || !p2.Deadline(s).Equal(at(72*time.Hour)) {
		t.Fatalf("getall only: %+v", a)
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []func(*Policy){
		func(p *Policy) { p.MegviiCallBudget = 0 },
		func(p *Policy) { p.MegviiLastChance = 25 * time.Hour },
		func(p *Policy) { p.RetryMax = time.Second },
		func(p *Policy) { p.BaiduRetention = 0 },
	}
	for i, f := range bad {
		p := Defaults()
		f(&p)
		if p.Validate() == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

// TestBaiduVerdictComesFromTheVendor: a browser opening /success after a
// failed liveness check (223120) must not make the state say "success": the
// flow status is getall's, the landing only a hint kept beside it.
func TestBaiduVerdictComesFromTheVendor(t *testing.T) {
	p := Defaults()
	cases := []struct {
		name      string
		landing   string
		anyPassed bool
		want      string
	}{
		{"forged success, liveness failed", "success", false, "failure"},
		{"honest failure", "failure", false, "failure"},
		{"failure page, vendor passed", "failure", true, "success"},
		{"honest success", "success", true, "success"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := build(p, e(token(contract.Baidu, 0)), e(completion(c.landing, 10*time.Minute)))
			if s.FlowStatus != "" {
				t.Fatalf("the landing decided the flow status before any vendor answer: %q", s.FlowStatus)
			}
			p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, Attempts: 1, AnyPassed: c.anyPassed}, at(11*time.Minute), nil)
			b, _ := json.Marshal(s)
			if s.FlowStatus != c.want || !strings.Contains(string(b), `"landing":"`+c.landing+`"`) {
				t.Fatalf("flow status %q, want %q; state %s", s.FlowStatus, c.want, b)
			}
		})
	}
	// Only the two landings are kept as hints.
	s := build(p, e(token(contract.Baidu, 0)), e(completion("<script>", 10*time.Minute)))
	if b, _ := json.Marshal(s); strings.Contains(string(b), "landing") {
		t.Fatalf("an unknown landing was kept: %s", b)
	}
}

// TestUnregisteredBaiduLandingWaitsForARegistration: a landing for a token
// nobody registered plans no call; a registration makes it due at the
// landing time; without one, once the results' retention has passed since the
// landing, it is discarded (no call, no terminal).
func TestUnregisteredBaiduLandingWaitsForARegistration(t *testing.T) {
	p := Defaults()
	for _, now := range []time.Duration{10 * time.Minute, 3 * time.Hour, 72*time.Hour + 9*time.Minute} {
		s := build(p, e(completion("success", 10*time.Minute)))
		if a := p.Plan(s, at(now)); len(a.Calls) != 0 || a.Close != nil || a.Wait.IsZero() {
			t.Fatalf("unregistered, at %s: %+v", now, a)
		}
	}
	s := build(p, e(completion("success", 10*time.Minute)))
	if a := p.Plan(s, at(72*time.Hour+10*time.Minute)); !a.Discard || len(a.Calls) != 0 || a.Close != nil {
		t.Fatalf("unregistered past the retention: %+v", a)
	}
	// A registration after the landing: harvested as usual, the landing time
	// still the completion hint.
	s = build(p, e(completion("success", 10*time.Minute)), e(token(contract.Baidu, 0)))
	if a := p.Plan(s, at(10*time.Minute)); strings.Join(a.Calls, ",") != "result/getall,result/detail,result/media/query" || s.Unregistered {
		t.Fatalf("registered after the landing: %+v %+v", a, s)
	}
	if !s.CompletedAt.Equal(at(10 * time.Minute)) {
		t.Fatalf("completion hint %v", s.CompletedAt)
	}
	// A registration first, then the landing: as before.
	s = build(p, e(token(contract.Baidu, 0)), e(completion("success", 10*time.Minute)))
	if s.Unregistered || len(p.Plan(s, at(10*time.Minute)).Calls) != 3 {
		t.Fatalf("registered first: %+v", s)
	}
	// Megvii callbacks are signed: a callback alone is harvested as today.
	s = build(p, e(callback("OK", time.Minute)))
	if s.Unregistered || len(p.Plan(s, at(time.Minute)).Calls) != 1 {
		t.Fatalf("megvii callback alone: %+v", s)
	}
}
