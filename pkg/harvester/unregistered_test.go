package harvester

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// baiduAnswer answers getall with one attempt (passed or not) and the other
// endpoints with an empty success.
func baiduAnswer(passed bool) func(st *schedule.State, ep string) (*contract.Response, schedule.Result) {
	return func(st *schedule.State, ep string) (*contract.Response, schedule.Result) {
		res := schedule.Result{Endpoint: ep, Recorded: true}
		if ep == baidu.EndpointGetAll {
			res.Attempts, res.AnyPassed = 1, passed
		}
		return &contract.Response{Vendor: contract.Baidu, VerificationID: st.ID, Endpoint: ep, HTTPStatus: 200, Body: []byte(`{"success":true}`)}, res
	}
}

// epCaller records every call as "id endpoint".
type epCaller struct {
	fakeCaller
	answerEP func(st *schedule.State, ep string) (*contract.Response, schedule.Result)
}

func (c *epCaller) Call(ctx context.Context, st *schedule.State, ep string) (*contract.Response, schedule.Result) {
	c.mu.Lock()
	c.calls = append(c.calls, st.ID+" "+ep)
	c.mu.Unlock()
	return c.answerEP(st, ep)
}

type baiduRig struct {
	t      *testing.T
	ctx    context.Context
	eng    *Engine
	store  *memStore
	raw    *memRaw
	caller *epCaller
	clk    *clock.Sim
	reg    *prometheus.Registry
}

func newBaiduRig(t *testing.T, passed bool, cfg func(*EngineConfig)) *baiduRig {
	r := &baiduRig{t: t, store: &memStore{}, raw: &memRaw{}, caller: &epCaller{answerEP: baiduAnswer(passed)},
		clk: clock.NewSim(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), 0, nil), reg: prometheus.NewRegistry()}
	ec := engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.Now, c.Source, c.Metrics = schedule.Defaults(), map[contract.Vendor]Caller{contract.Baidu: r.caller}, map[contract.Vendor]VendorLimits{contract.Baidu: {Concurrency: 4}}, r.store, r.raw, r.clk.Now, "/test", NewMetrics(r.reg)
	})
	if cfg != nil {
		cfg(&ec)
	}
	r.eng = NewEngine(ec)
	r.ctx = stepped(t, r.eng)
	r.eng.AddPartition(0, nil)
	return r
}

// settle steps the engine until every job that could start at the
// clock's time has run.
func (r *baiduRig) settle() {
	r.t.Helper()
	settle(r.t, r.ctx, r.eng)
}

func (r *baiduRig) landing(id, page string) <-chan struct{} {
	return r.eng.Apply(0, contract.TypeBaiduCompletion, contract.Event{Vendor: contract.Baidu, VerificationID: id, Status: page, ReceivedAt: r.clk.Now()})
}

func (r *baiduRig) register(id string) <-chan struct{} {
	issued := r.clk.Now().Add(-time.Minute)
	return r.eng.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Baidu, VerificationID: id, IssuedAt: &issued, ReceivedAt: r.clk.Now()})
}

// terminal returns the key's terminals published so far.
func (r *baiduRig) terminals(key string) []contract.Terminal {
	r.raw.mu.Lock()
	defer r.raw.mu.Unlock()
	var out []contract.Terminal
	for _, m := range r.raw.msgs {
		if e, _ := contract.FromMessage(m); e.Type == contract.TypeHarvestTerminal && string(m.Key) == key {
			var t contract.Terminal
			_ = json.Unmarshal(m.Value, &t)
			out = append(out, t)
		}
	}
	return out
}

func (r *baiduRig) calledFor(id string) int {
	n := 0
	for _, c := range r.caller.order() {
		if len(c) > len(id) && c[:len(id)+1] == id+" " {
			n++
		}
	}
	return n
}

// metric reads a gauge or counter from the registry, summed over its
// series (0 when it is not there).
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricstest.Sum(t, reg, name)
}

// TestUnregisteredLandingCostsNoVendorCall (law 8): a landing for a token
// nobody registered is kept but not due; its registration makes it due at
// the landing time and it is harvested as before; without one, after the
// results' retention it is discarded: a tombstone, no call, no terminal.
func TestUnregisteredLandingCostsNoVendorCall(t *testing.T) {
	r := newBaiduRig(t, true, nil)
	landed := r.clk.Now()
	<-r.landing("u1", "success")
	<-r.landing("u2", "success")
	for _, id := range []string{"u1", "u2"} {
		st, ok := r.eng.Snapshot("baidu:" + id)
		if !ok || !st.NextAt.After(landed.Add(71*time.Hour)) {
			t.Fatalf("%s: an unregistered landing is due at %v (state kept: %v)", id, st.NextAt, ok)
		}
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_verifications"); got != 2 {
		t.Fatalf("unregistered gauge %v, want 2", got)
	}
	// The registration arrives later: harvested, the landing is the completion.
	r.clk.Advance(time.Minute)
	<-r.register("u1")
	r.settle()
	if tms := r.terminals("baidu:u1"); len(tms) != 1 {
		t.Fatalf("u1 terminals %+v, want one", tms)
	}
	if tm := r.terminals("baidu:u1")[0]; tm.Outcome != contract.OutcomeHarvested || tm.CompletedAt == nil || !tm.CompletedAt.Equal(landed) {
		t.Fatalf("u1 terminal %+v", tm)
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_verifications"); got != 1 {
		t.Fatalf("unregistered gauge after a registration %v, want 1", got)
	}
	// No registration for u2: discarded once nothing could be harvested.
	r.clk.Set(landed.Add(72*time.Hour + time.Second))
	r.settle()
	if _, ok := r.eng.Snapshot("baidu:u2"); ok || r.eng.Pending() != 0 {
		t.Fatalf("u2 not discarded: %d pending", r.eng.Pending())
	}
	if rec := r.store.get("baidu:u2"); rec != nil {
		t.Fatalf("u2 left a state record: %+v", rec)
	}
	if n := r.calledFor("u2"); n != 0 || len(r.terminals("baidu:u2")) != 0 {
		t.Fatalf("u2: %d vendor calls, terminals %+v", n, r.terminals("baidu:u2"))
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_discarded_total"); got != 1 {
		t.Fatalf("discarded counter %v, want 1", got)
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_verifications"); got != 0 {
		t.Fatalf("unregistered gauge at the end %v, want 0", got)
	}
	// A late registration for the discarded token is a registered
	// verification like any other (it gets its terminal).
	<-r.register("u2")
	r.clk.Advance(2*time.Hour + 6*time.Minute) // its poll past the token window
	r.settle()
	if tms := r.terminals("baidu:u2"); len(tms) != 1 {
		t.Fatalf("u2 terminals after its registration %+v, want one", tms)
	}
}

// lineCounter counts log lines containing a word.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineCounter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(b))
	return len(b), nil
}

func (l *lineCounter) count(word string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, word) {
			n++
		}
	}
	return n
}

func copyRecords(t *testing.T, in map[string]*StateRecord) map[string]*StateRecord {
	out := map[string]*StateRecord{}
	for k, r := range in {
		c, err := UnmarshalRecord(MarshalRecord(r))
		if err != nil {
			t.Fatal(err)
		}
		out[k] = c
	}
	return out
}

// TestUnregisteredAreCapped (law 8, bounded damage): past MaxUnregistered a
// landing that would add a verification nobody registered is acknowledged,
// stored nowhere, counted, and logged once a minute at most; landings for
// registered or already kept tokens and registrations are never refused;
// the count follows restores and revocations.
func TestUnregisteredAreCapped(t *testing.T) {
	logs := &lineCounter{}
	r := newBaiduRig(t, true, func(c *EngineConfig) {
		c.MaxUnregistered = 2
		c.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	})
	<-r.landing("a", "success")
	<-r.landing("b", "failure")
	for _, id := range []string{"c", "d", "e"} {
		select {
		case <-r.landing(id, "success"):
		default:
			t.Fatalf("a refused landing %s was not acknowledged at once", id)
		}
		if _, ok := r.eng.Snapshot("baidu:" + id); ok || r.store.get("baidu:"+id) != nil {
			t.Fatalf("a landing past the limit was kept: %s", id)
		}
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_refused_events_total"); got != 3 {
		t.Fatalf("refused %v, want 3", got)
	}
	if n := logs.count("unregistered"); n != 1 {
		t.Fatalf("%d log lines for 3 refusals within a minute, want 1", n)
	}
	r.clk.Advance(time.Minute)
	<-r.landing("d", "success")
	if n := logs.count("unregistered"); n != 2 {
		t.Fatalf("%d log lines a minute later, want 2", n)
	}
	// Not new: a second landing for a kept one, a registration.
	<-r.landing("a", "failure")
	<-r.register("c")
	if st, ok := r.eng.Snapshot("baidu:a"); !ok || st.Landing != "failure" {
		t.Fatalf("a second landing for a kept token: %+v", st)
	}
	if st, ok := r.eng.Snapshot("baidu:c"); !ok || st.Unregistered {
		t.Fatalf("a registration was refused: %+v %v", st, ok)
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_refused_events_total"); got != 4 {
		t.Fatalf("refused %v, want 4", got)
	}
	// A registration frees a place.
	<-r.register("a")
	<-r.landing("f", "success")
	if _, ok := r.eng.Snapshot("baidu:f"); !ok {
		t.Fatal("f refused below the limit")
	}
	if got := metric(t, r.reg, "faceharvest_harvester_unregistered_verifications"); got != 2 {
		t.Fatalf("gauge %v, want 2 (b, f)", got)
	}

	// Restores and revocations, on an engine of its own (no dispatcher:
	// only the counts are looked at).
	reg := prometheus.NewRegistry()
	e2 := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Store, c.Raw, c.Now, c.Metrics, c.MaxUnregistered = schedule.Defaults(), map[contract.Vendor]Caller{contract.Baidu: r.caller}, &memStore{}, &memRaw{}, r.clk.Now, NewMetrics(reg), 2
	}))
	r.store.mu.Lock()
	p0 := copyRecords(t, r.store.recs)
	r.store.mu.Unlock()
	e2.AddPartition(0, p0)
	gauge := func() float64 { return metric(t, reg, "faceharvest_harvester_unregistered_verifications") }
	if gauge() != 2 {
		t.Fatalf("after restore: gauge %v, want 2", gauge())
	}
	landed := r.clk.Now()
	e2.AddPartition(1, map[string]*StateRecord{"baidu:g": {State: &schedule.State{Vendor: contract.Baidu, ID: "g", FirstSeen: landed, CompletedAt: &landed,
		NextAt: landed.Add(72 * time.Hour), Landing: "success", Unregistered: true}}})
	if gauge() != 3 {
		t.Fatalf("after a second partition: gauge %v, want 3 (restored ones are kept above the limit)", gauge())
	}
	apply := func(p int, id string) bool {
		<-e2.Apply(p, contract.TypeBaiduCompletion, contract.Event{Vendor: contract.Baidu, VerificationID: id, Status: "success", ReceivedAt: r.clk.Now()})
		_, ok := e2.Snapshot("baidu:" + id)
		return ok
	}
	if apply(1, "h") {
		t.Fatal("a new unregistered landing accepted above the limit")
	}
	e2.RevokePartition(1)
	if gauge() != 2 || apply(0, "h") {
		t.Fatalf("after revoking partition 1: gauge %v, want 2, and still full", gauge())
	}
	e2.RevokePartition(0)
	if gauge() != 0 {
		t.Fatalf("after revoking everything: gauge %v", gauge())
	}
	e2.AddPartition(0, nil)
	if !apply(0, "h") || gauge() != 1 {
		t.Fatalf("an empty engine refused a landing, or counts %v", gauge())
	}
	e2.mu.Lock()
	pending := e2.pending[contract.Baidu]
	e2.mu.Unlock()
	if pending != 1 {
		t.Fatalf("pending %d, want 1", pending)
	}
}

// TestForgedSuccessLandingDoesNotDecide (law 8): a user whose liveness check
// failed opens /success; the terminal carries the vendor's verdict
// (getall: no attempt passed) and the landing only as a hint.
func TestForgedSuccessLandingDoesNotDecide(t *testing.T) {
	r := newBaiduRig(t, false, nil)
	<-r.register("f1")
	<-r.landing("f1", "success")
	// No attempt passed and the token window is open: the user may retry,
	// so getall is polled again after the window before the harvest ends.
	r.settle()
	if n := r.calledFor("f1"); n != 1 || len(r.terminals("baidu:f1")) != 0 {
		t.Fatalf("f1: %d calls (want getall once), terminals %+v (want none)", n, r.terminals("baidu:f1"))
	}
	r.clk.Advance(2*time.Hour + 10*time.Minute)
	r.settle()
	if tms := r.terminals("baidu:f1"); len(tms) != 1 {
		t.Fatalf("f1 terminals %+v, want one", tms)
	}
	r.raw.mu.Lock()
	var value string
	for _, m := range r.raw.msgs {
		if e, _ := contract.FromMessage(m); e.Type == contract.TypeHarvestTerminal {
			value = string(m.Value)
		}
	}
	r.raw.mu.Unlock()
	if !strings.Contains(value, `"flow_status":"failure"`) || !strings.Contains(value, `"landing":"success"`) {
		t.Fatalf("terminal %s: want the vendor's failure and the landing as a hint", value)
	}
	if n := r.calledFor("f1"); n != 3 { // getall twice, media/query: detail answers only a success
		t.Fatalf("calls %v", r.caller.order())
	}
}
