package harvester

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// simRig is one engine calling the Baidu simulator through the real client
// and BaiduCaller, on one simulated clock. The test plays the browser: it
// applies the landings itself, at the simulated times it chooses.
type simRig struct {
	t     *testing.T
	ctx   context.Context
	eng   *Engine
	sim   *vendorsim.Sim
	clk   *clock.Sim
	store *memStore
	raw   *memRaw
	reg   *prometheus.Registry
}

func newSimRig(t *testing.T, pol func(*schedule.Policy)) *simRig {
	t.Helper()
	clk := clock.NewSim(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC), 0, nil)
	sim := vendorsim.New(vendorsim.Config{Clock: clk, Seed: 5, BaiduAPIKey: "bk", BaiduSecretKey: "bs", ImageBytes: 512, VideoBytes: 2048})
	bs := httptest.NewServer(sim.BaiduHandler())
	t.Cleanup(bs.Close)
	sim.SetBaiduPublicURL(bs.URL)
	bc, err := baidu.New(baidu.Config{BaseURL: bs.URL, APIKey: config.NewSecret("bk"), SecretKey: config.NewSecret("bs"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := schedule.Defaults()
	if pol != nil {
		pol(&p)
	}
	r := &simRig{t: t, sim: sim, clk: clk, store: &memStore{}, raw: &memRaw{}, reg: prometheus.NewRegistry()}
	r.eng = NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.Now, c.Source, c.Metrics = p, map[contract.Vendor]Caller{contract.Baidu: BaiduCaller{Client: bc}}, map[contract.Vendor]VendorLimits{contract.Baidu: {Concurrency: 4}}, r.store, r.raw, clk.Now, "/test", NewMetrics(r.reg)
	}))
	r.ctx = stepped(t, r.eng)
	r.eng.AddPartition(0, nil)
	return r
}

// create starts a simulated verification and registers its token.
func (r *simRig) create(spec vendorsim.BaiduSpec) string {
	r.t.Helper()
	spec.NoRedirect = true // the test lands itself
	c, err := r.sim.CreateBaidu(spec)
	if err != nil {
		r.t.Fatal(err)
	}
	issued := c.Created
	<-r.eng.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Baidu, VerificationID: c.VerifyToken, IssuedAt: &issued, ReceivedAt: r.clk.Now()})
	return c.VerifyToken
}

func (r *simRig) land(vt, page string) {
	<-r.eng.Apply(0, contract.TypeBaiduCompletion, contract.Event{Vendor: contract.Baidu, VerificationID: vt, Status: page, ReceivedAt: r.clk.Now()})
}

func (r *simRig) calls(vt, ep string) int {
	st, _ := r.sim.Baidu(vt)
	return st.Calls[ep]
}

// settled steps the engine until every job that could start at the
// clock's time has run (settle).
func (r *simRig) settled() {
	r.t.Helper()
	settle(r.t, r.ctx, r.eng)
}

func (r *simRig) terminal(vt string) *contract.Terminal {
	r.raw.mu.Lock()
	defer r.raw.mu.Unlock()
	for _, m := range r.raw.msgs {
		if e, _ := contract.FromMessage(m); e.Type == contract.TypeHarvestTerminal && string(m.Key) == contract.Key(contract.Baidu, vt) {
			var t contract.Terminal
			_ = json.Unmarshal(m.Value, &t)
			return &t
		}
	}
	return nil
}

// lastGetAll decodes the last getall answer published for vt.
func (r *simRig) lastGetAll(vt string) *baidu.GetAllResult {
	r.raw.mu.Lock()
	defer r.raw.mu.Unlock()
	var out *baidu.GetAllResult
	for _, m := range r.raw.msgs {
		resp, err := contract.ParseResponse(m)
		if err != nil || resp.VerificationID != vt || resp.Endpoint != baidu.EndpointGetAll {
			continue
		}
		env, verr := baidu.Classify(resp.Endpoint, resp.HTTPStatus, resp.Body)
		if verr != nil {
			continue
		}
		var g baidu.GetAllResult
		if json.Unmarshal(env.Result, &g) == nil {
			out = &g
		}
	}
	return out
}

// TestBaiduFailureLandingDoesNotCloseTheToken (issue 14, item 6): with "URL
// stays valid on failure" the user fails, lands on the failure page, retries
// on the same token and passes. The failure landing must not close the
// harvest: getall is polled until an attempt passed, then detail and media
// once, and the last getall lists both attempts.
func TestBaiduFailureLandingDoesNotCloseTheToken(t *testing.T) {
	r := newSimRig(t, nil)
	vt := r.create(vendorsim.BaiduSpec{Attempts: 2, AttemptGap: vendorsim.Duration(20 * time.Minute), CompleteAfter: vendorsim.Duration(30 * time.Minute), Media: "process_video"})
	r.clk.Advance(10 * time.Minute) // attempt 1 ended: failed
	r.land(vt, schedule.LandingFailure)
	r.settled()
	if n := r.calls(vt, baidu.EndpointGetAll); n != 1 {
		t.Fatalf("getall called %d times after the failure landing, want once", n)
	}
	if tm := r.terminal(vt); tm != nil {
		t.Fatalf("the failure landing closed the token: %s (%s), flow %s", tm.Outcome, tm.Reason, tm.FlowStatus)
	}
	r.clk.Advance(20 * time.Minute) // attempt 2 ended: passed
	r.land(vt, schedule.LandingSuccess)
	r.settled()
	tm := r.terminal(vt)
	if tm == nil {
		t.Fatal("no terminal after the success landing")
	}
	g := r.lastGetAll(vt)
	if tm.Outcome != contract.OutcomeHarvested || tm.FlowStatus != schedule.LandingSuccess || g == nil || len(g.VerifyResult) != 2 || !g.Passed() {
		t.Fatalf("terminal %+v; last getall %+v", tm, g)
	}
	if d, m := r.calls(vt, baidu.EndpointDetail), r.calls(vt, baidu.EndpointMedia); d != 1 || m != 1 {
		t.Fatalf("detail called %d times, media/query %d: want once each, after the passed attempt", d, m)
	}
	if st, _ := r.sim.Baidu(vt); st.Outcomes["queried_before_use"] != 0 {
		t.Fatalf("queried before the user acted: %+v", st.Outcomes)
	}
}

// TestBaiduFailedAttemptsPolledUntilTheTokenWindowEnds: a user who fails
// and never lands again: getall is polled, backing off, and once more after
// the token window; then the harvest ends with the failed attempts.
func TestBaiduFailedAttemptsPolledUntilTheTokenWindowEnds(t *testing.T) {
	r := newSimRig(t, nil)
	vt := r.create(vendorsim.BaiduSpec{Outcome: "failure", CompleteAfter: vendorsim.Duration(10 * time.Minute)})
	r.clk.Advance(10 * time.Minute)
	r.land(vt, schedule.LandingFailure)
	for i := 0; i < 40 && r.terminal(vt) == nil; i++ {
		r.settled()
		if next := r.eng.NextWake(); !next.IsZero() {
			if next.Before(r.clk.Now().Add(time.Minute)) && r.terminal(vt) == nil && r.calls(vt, baidu.EndpointGetAll) > 1 {
				t.Fatalf("polling faster than once a minute: next at %s", next.Sub(r.clk.Now()))
			}
			r.clk.Set(next)
		}
	}
	tm := r.terminal(vt)
	if tm == nil || tm.Outcome != contract.OutcomeHarvested || tm.FlowStatus != schedule.LandingFailure {
		t.Fatalf("terminal %+v", tm)
	}
	if n := r.calls(vt, baidu.EndpointGetAll); n < 2 || n > 8 {
		t.Fatalf("getall called %d times in the token window: want a few polls, backing off", n)
	}
	if tm.DecidedAt.Before(time.Date(2026, 7, 1, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("closed at %s, before the token window ended", tm.DecidedAt)
	}
	if r.calls(vt, baidu.EndpointDetail) != 0 {
		t.Fatal("detail called for a token without a passed attempt")
	}
}

// TestBaiduPersistentError18PausesTheVendor (issue 14, item 7): 001's FAQ
// says a persistent error 18 means the paid APIs are not enabled or their
// free quota is gone. Rate limiting at first; past the grace, an account
// fault: the vendor is paused and the fault counted, the verification kept.
func TestBaiduPersistentError18PausesTheVendor(t *testing.T) {
	r := newSimRig(t, nil)
	vt := r.create(vendorsim.BaiduSpec{})
	if err := r.sim.QueueFault("baidu", vendorsim.FaultConcurrency, 1_000_000); err != nil {
		t.Fatal(err)
	}
	start := r.clk.Now()
	r.clk.Advance(time.Minute)
	r.land(vt, schedule.LandingSuccess)
	paused := func() bool { _, _, p := r.eng.lim[contract.Baidu].state(r.clk.Now()); return p }
	for !paused() {
		if r.clk.Now().Sub(start) > 20*time.Minute {
			t.Fatalf("error 18 for %s: the vendor was never paused (%d getall calls)", r.clk.Now().Sub(start), r.calls(vt, baidu.EndpointGetAll))
		}
		before := r.calls(vt, baidu.EndpointGetAll)
		r.clk.Advance(30 * time.Second)
		r.settled()
		if r.calls(vt, baidu.EndpointGetAll) == before && !paused() {
			t.Fatalf("at %s: no getall within 30 s of error 18, and no pause", r.clk.Now().Sub(start))
		}
	}
	if d := r.clk.Now().Sub(start.Add(time.Minute)); d < 5*time.Minute {
		t.Fatalf("paused after %s of error 18: rate limiting comes first", d)
	}
	if got := metric(t, r.reg, "faceharvest_harvester_account_faults_total"); got < 1 {
		t.Fatalf("account faults %v", got)
	}
	if _, ok := r.eng.Snapshot(contract.Key(contract.Baidu, vt)); !ok || r.terminal(vt) != nil {
		t.Fatal("the verification was not kept")
	}
}

// TestBaiduTokenInvalidRightAfterACompletion: 001's FAQ answers
// "Token无效或者已过期" also for a verify_token used with another
// application's access_token. Right after a landing the client retries once
// with a fresh access_token, and a verification still answered so is
// retried later: one verification is no account fault (no pause), and its
// data is harvested once the vendor answers.
func TestBaiduTokenInvalidRightAfterACompletion(t *testing.T) {
	r := newSimRig(t, nil)
	vt := r.create(vendorsim.BaiduSpec{Media: "process_video"})
	if err := r.sim.QueueVerificationFaults("baidu", vt, []string{vendorsim.FaultForeignAccessToken, vendorsim.FaultForeignAccessToken}); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(time.Minute)
	r.land(vt, schedule.LandingSuccess)
	for i := 0; i < 10 && r.terminal(vt) == nil; i++ {
		r.settled()
		r.clk.Advance(time.Minute + time.Second)
	}
	r.settled()
	if tm := r.terminal(vt); tm == nil || tm.Outcome != contract.OutcomeHarvested {
		t.Fatalf("terminal %+v: want harvested after the vendor answered", tm)
	}
	if got := metric(t, r.reg, "faceharvest_harvester_account_faults_total"); got != 0 {
		t.Fatalf("account faults %v for one verification, want 0", got)
	}
}

// TestBaiduTokenInvalidAcrossVerificationsPausesTheVendor: when every call
// is answered "Token无效或者已过期" inside the data windows, also with fresh
// access_tokens, across BaiduTokenInvalidFaults verifications, the keys are
// not those of the application that generated the tokens: an account fault
// (vendor paused, counted), the verifications kept, none closed.
func TestBaiduTokenInvalidAcrossVerificationsPausesTheVendor(t *testing.T) {
	r := newSimRig(t, func(p *schedule.Policy) { p.BaiduTokenInvalidFaults = 3 })
	var vts []string
	for range 3 {
		vts = append(vts, r.create(vendorsim.BaiduSpec{}))
	}
	if err := r.sim.QueueFault("baidu", vendorsim.FaultForeignAccessToken, 1000); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(time.Minute)
	for _, vt := range vts {
		r.land(vt, schedule.LandingSuccess)
	}
	r.settled()
	if got := metric(t, r.reg, "faceharvest_harvester_account_faults_total"); got < 1 {
		t.Fatalf("account faults %v after %d verifications answered token invalid", got, len(vts))
	}
	if _, _, paused := r.eng.lim[contract.Baidu].state(r.clk.Now()); !paused {
		t.Fatal("the vendor is not paused")
	}
	for _, vt := range vts {
		if tm := r.terminal(vt); tm != nil {
			t.Fatalf("%s closed %+v: an account fault decides nothing", vt, tm)
		}
	}
}

// TestBaiduNotQueriedBeforeTheUserActed (issue 14, item 11): 001 says query
// only after the user acted, or the token never takes effect (the simulator
// spoils it). A registered token is not queried before its landing, nor,
// without one, before its token window ended.
func TestBaiduNotQueriedBeforeTheUserActed(t *testing.T) {
	r := newSimRig(t, nil)
	slow := r.create(vendorsim.BaiduSpec{CompleteAfter: vendorsim.Duration(100 * time.Minute)})
	silent := r.create(vendorsim.BaiduSpec{CompleteAfter: vendorsim.Duration(50 * time.Minute)}) // never lands
	for _, at := range []time.Duration{time.Minute, 49 * time.Minute, 99 * time.Minute} {
		r.clk.Set(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC).Add(at))
		r.settled()
		if n := r.calls(slow, baidu.EndpointGetAll) + r.calls(silent, baidu.EndpointGetAll); n != 0 {
			t.Fatalf("at %s: %d queries before the user acted", at, n)
		}
		if next := r.eng.NextWake(); next.Before(time.Date(2026, 7, 1, 11, 0, 0, 0, time.UTC)) {
			t.Fatalf("at %s: a call planned at %s, before a landing or the token window's end", at, next)
		}
	}
	r.clk.Set(time.Date(2026, 7, 1, 10, 40, 0, 0, time.UTC))
	r.land(slow, schedule.LandingSuccess)
	r.settled()
	if r.terminal(slow) == nil || r.terminal(silent) != nil {
		t.Fatalf("after slow's landing: terminals %+v and %+v, want slow's only", r.terminal(slow), r.terminal(silent))
	}
	r.clk.Set(time.Date(2026, 7, 1, 11, 5, 0, 0, time.UTC)) // the token window and the poll delay
	r.settled()
	for _, vt := range []string{slow, silent} {
		st, _ := r.sim.Baidu(vt)
		if tm := r.terminal(vt); tm == nil || tm.Outcome != contract.OutcomeHarvested || st.Outcomes["queried_before_use"] != 0 {
			t.Fatalf("%s: terminal %+v; simulator %+v", vt, tm, st.Outcomes)
		}
	}
}
