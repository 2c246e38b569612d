package harvester

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// memStore is an in-memory StateStore that records every write in order.
type memStore struct {
	mu     sync.Mutex
	recs   map[string]*StateRecord
	parts  map[string]int // the partition each record was saved to
	writes []string
}

func (s *memStore) Save(_ context.Context, p int, key string, r *StateRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs == nil {
		s.recs, s.parts = map[string]*StateRecord{}, map[string]int{}
	}
	if r == nil {
		delete(s.recs, key)
		delete(s.parts, key)
		s.writes = append(s.writes, key+":tombstone")
		return nil
	}
	s.recs[key], s.parts[key] = r, p
	kind := "state"
	if r.ClosedAt != nil {
		kind = "closed"
	} else if r.State != nil && r.State.Intent != nil {
		kind = "intent"
	}
	s.writes = append(s.writes, key+":"+kind)
	return nil
}

func (s *memStore) get(key string) *StateRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs[key]
}

// memRaw records published messages.
type memRaw struct {
	mu   sync.Mutex
	msgs []contract.Message
}

func (p *memRaw) WriteMessages(_ context.Context, msgs ...contract.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *memRaw) types() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.msgs {
		e, _ := contract.FromMessage(m)
		out = append(out, string(m.Key)+" "+e.Type)
	}
	return out
}

// fakeCaller answers from a script and checks the intent is durable first.
type fakeCaller struct {
	mu       sync.Mutex
	store    *memStore
	calls    []string
	answer   func(id string) (*contract.Response, schedule.Result)
	gate     chan struct{}
	noIntent bool
}

func (c *fakeCaller) Call(ctx context.Context, st *schedule.State, ep string) (*contract.Response, schedule.Result) {
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	c.calls = append(c.calls, st.ID)
	c.mu.Unlock()
	if st.Vendor == contract.Megvii && !c.noIntent {
		if r := c.store.get(st.Key()); r == nil || r.State == nil || r.State.Intent == nil {
			return nil, schedule.Result{Endpoint: ep, Class: vendorerr.CallerBug, Message: "called before the intent was stored"}
		}
	}
	return c.answer(st.ID)
}

func (c *fakeCaller) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func okAnswer(id string) (*contract.Response, schedule.Result) {
	return &contract.Response{Vendor: contract.Megvii, VerificationID: id, Endpoint: megvii.EndpointGetResult, HTTPStatus: 200, Body: []byte(`{"status":"OK"}`)},
		schedule.Result{Endpoint: megvii.EndpointGetResult, Recorded: true, Served: true}
}

type rig struct {
	eng    *Engine
	store  *memStore
	raw    *memRaw
	caller *fakeCaller
	clk    *clock.Sim
	ctx    context.Context
}

// newSteppedRig is an engine without its dispatcher: the test advances it
// with step or settle, so that what did not happen is a state it can read,
// not the absence of an event within a sleep.
func newSteppedRig(t *testing.T, conc int, answer func(string) (*contract.Response, schedule.Result)) *rig {
	store := &memStore{}
	raw := &memRaw{}
	caller := &fakeCaller{store: store, answer: answer}
	clk := clock.NewSim(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), 0, nil)
	eng := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.Now, c.Source = schedule.Defaults(), map[contract.Vendor]Caller{contract.Megvii: caller}, map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: conc}}, store, raw, clk.Now, "/test"
	}))
	r := &rig{eng: eng, store: store, raw: raw, caller: caller, clk: clk, ctx: stepped(t, eng)}
	eng.AddPartition(0, nil)
	return r
}

// stepped returns the context a test steps eng with; its cleanup ends the
// work that steps started.
func stepped(t *testing.T, eng *Engine) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); eng.wg.Wait() })
	return ctx
}

// step runs one dispatch synchronously and waits, bounded, until the work,
// state writes and sweep it started are over.
func (r *rig) step(t *testing.T) {
	t.Helper()
	r.eng.dispatch(r.ctx)
	eventually(t, "the engine is quiet", r.eng.quiet)
}

// settle steps the engine until it is quiet and a dispatch starts nothing:
// every job that could start at the clock's time has run.
func (r *rig) settle(t *testing.T) {
	t.Helper()
	settle(t, r.ctx, r.eng)
}

func settle(t *testing.T, ctx context.Context, e *Engine) {
	t.Helper()
	for {
		eventually(t, "the engine is quiet", e.quiet)
		if e.dispatch(ctx) == 0 {
			eventually(t, "the engine is quiet", e.quiet) // a sweep it started
			return
		}
	}
}

// quiet reports whether no work, state write or sweep is under way.
func (e *Engine) quiet() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hk.sweeping || len(e.w.waiters) > 0 {
		return false
	}
	for _, p := range e.parts {
		if p.busy > 0 {
			return false
		}
	}
	for _, it := range e.items {
		if it.saving || it.busy {
			return false
		}
	}
	return true
}

// dueNow reports whether the item under key waits in its vendor's due
// heap, for a slot.
func (e *Engine) dueNow(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	it := e.items[key]
	return it != nil && !it.busy && it.dueIdx >= 0
}

func (r *rig) event(typ string, ev contract.Event) {
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = r.clk.Now()
	}
	<-r.eng.Apply(0, typ, ev)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestHarvestOnceWithIntentFirst(t *testing.T) {
	r := newSteppedRig(t, 4, okAnswer)
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "b1", Status: "OK"})
	r.step(t)
	if rec := r.store.get("megvii:b1"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("not closed after one step: %+v", rec)
	}
	if got := r.raw.types(); len(got) != 2 || got[0] != "megvii:b1 "+contract.TypeVendorResponse || got[1] != "megvii:b1 "+contract.TypeHarvestTerminal {
		t.Fatalf("raw %v", got)
	}
	if len(r.caller.order()) != 1 {
		t.Fatalf("calls %v", r.caller.order())
	}
	// A late duplicate callback starts nothing.
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "b1", Status: "OK"})
	r.step(t)
	if len(r.caller.order()) != 1 || r.eng.Pending() != 0 || r.eng.dueCount() != 0 {
		t.Fatalf("second harvest: %v, %d pending, %d due", r.caller.order(), r.eng.Pending(), r.eng.dueCount())
	}
	msgs := r.raw.msgs
	term, _ := contract.FromMessage(msgs[1])
	if term.ID != contract.TerminalID(contract.Megvii, "b1") {
		t.Fatal("terminal id")
	}
}

func TestDeadlineFirst(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	r.caller.gate = make(chan struct{})
	now := r.clk.Now()
	// Registered at different times: the earliest issued has the earliest deadline.
	order := []struct {
		id     string
		issued time.Duration
	}{{"late", -1 * time.Hour}, {"urgent", -20 * time.Hour}, {"middle", -10 * time.Hour}}
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "blocker", Status: "OK"})
	if n := r.eng.dispatch(r.ctx); n != 1 {
		t.Fatalf("%d jobs started, want the blocker's, held at the gate with the only slot", n)
	}
	for _, o := range order {
		issued := now.Add(o.issued)
		r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: o.id, IssuedAt: &issued})
		r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: o.id, Status: "OK"})
	}
	if n := r.eng.dispatch(r.ctx); n != 0 {
		t.Fatalf("%d jobs started beside the blocker's: the limit is one", n)
	}
	close(r.caller.gate)
	r.settle(t)
	if got := r.caller.order(); len(got) != 4 || got[1] != "urgent" || got[2] != "middle" || got[3] != "late" {
		t.Fatalf("order %v", got)
	}
}

func TestExpiredWithoutACall(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	issued := r.clk.Now().Add(-25 * time.Hour)
	r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "old", IssuedAt: &issued})
	r.step(t)
	if rec := r.store.get("megvii:old"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("not closed after a step: %+v", rec)
	}
	if len(r.caller.order()) != 0 {
		t.Fatal("called for an expired verification")
	}
	var term contract.Terminal
	m := r.raw.msgs[0]
	if err := jsonUnmarshal(m.Value, &term); err != nil || term.Outcome != contract.OutcomeExpired {
		t.Fatalf("terminal %+v %v", term, err)
	}
}

func TestAccountFaultPausesVendor(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	r := newSteppedRig(t, 2, func(id string) (*contract.Response, schedule.Result) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return nil, schedule.Result{Endpoint: megvii.EndpointGetResult, Class: vendorerr.Account, Message: "AUTHENTICATION_ERROR"}
		}
		return okAnswer(id)
	})
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "p1", Status: "OK"})
	r.step(t)
	if _, _, p := r.eng.lim[contract.Megvii].state(r.clk.Now()); !p {
		t.Fatal("not paused after the account fault")
	}
	// Due again, its turn comes while the vendor is paused: it gets no slot.
	r.clk.Advance(time.Minute - time.Second)
	r.step(t)
	if st, ok := r.eng.Snapshot("megvii:p1"); !ok || len(r.caller.order()) != 1 || !r.eng.dueNow("megvii:p1") {
		t.Fatalf("verification closed, retried or not due while paused (calls %v): %+v", r.caller.order(), st)
	}
	r.clk.Advance(2 * time.Second)
	r.step(t)
	if rec := r.store.get("megvii:p1"); rec == nil || rec.ClosedAt == nil || len(r.caller.order()) != 2 {
		t.Fatalf("not harvested after the pause (calls %v): %+v", r.caller.order(), rec)
	}
}

func TestRevokeWaitsForCallsInFlight(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	r.caller.gate = make(chan struct{})
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "r1", Status: "OK"})
	if n := r.eng.dispatch(r.ctx); n != 1 {
		t.Fatalf("%d jobs started, want one, held at the gate", n)
	}
	revoked := make(chan struct{})
	go func() { r.eng.RevokePartition(0); close(revoked) }()
	// The revocation has begun and waits for the partition to go idle,
	// which it cannot while the call is held at the gate.
	eventually(t, "the revocation waits", func() bool {
		r.eng.mu.Lock()
		defer r.eng.mu.Unlock()
		ps := r.eng.parts[0]
		return ps != nil && ps.revoked && ps.idle != nil
	})
	select {
	case <-revoked:
		t.Fatal("revoked with a call in flight")
	default:
	}
	close(r.caller.gate)
	<-revoked
	if got := r.raw.types(); len(got) != 2 {
		t.Fatalf("the call in flight was not recorded: %v", got)
	}
}

func TestClosedMarkersAreDeletedAfterRetention(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "g1", Status: "OK"})
	r.step(t)
	if rec := r.store.get("megvii:g1"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("not closed: %+v", rec)
	}
	r.clk.Advance(7 * 24 * time.Hour)
	r.step(t) // a sweep at seven days
	if r.store.get("megvii:g1") == nil {
		t.Fatal("marker deleted before the retention")
	}
	r.clk.Advance(25 * time.Hour)
	r.step(t) // a sweep past eight days
	if r.store.get("megvii:g1") != nil {
		t.Fatal("marker kept after the retention")
	}
}

func TestDecodeEventLabels(t *testing.T) {
	env := func(typ, key string, value string) contract.Message {
		return contract.Envelope{ID: "i", Source: "/t", Type: typ, Time: time.Now(), Key: key, Value: []byte(value)}.Message()
	}
	ok := `{"vendor":"megvii","verification_id":"v","received_at":"2026-07-01T09:00:00Z"}`
	cases := []struct {
		name  string
		m     contract.Message
		label string
	}{
		{"good", env(contract.TypeTokenRegistered, "megvii:v", ok), ""},
		{"no headers", contract.Message{Key: []byte("megvii:v"), Value: []byte(ok)}, "bad_envelope"},
		{"unknown type", env("com.example.x", "megvii:v", ok), "unknown_type"},
		{"not JSON", env(contract.TypeTokenRegistered, "megvii:v", "x"), "bad_value"},
		{"no id", env(contract.TypeTokenRegistered, "megvii:", `{"vendor":"megvii","received_at":"2026-07-01T09:00:00Z"}`), "bad_value"},
		{"unknown vendor", env(contract.TypeTokenRegistered, "acme:v", `{"vendor":"acme","verification_id":"v","received_at":"2026-07-01T09:00:00Z"}`), "bad_value"},
		{"key mismatch", env(contract.TypeTokenRegistered, "megvii:w", ok), "bad_key"},
	}
	for _, c := range cases {
		if _, _, label, reason := decodeEvent(c.m); label != c.label || (label != "") != (reason != "") {
			t.Errorf("%s: label %q reason %q", c.name, label, reason)
		}
	}
}

// gatedStore acknowledges writes only when released; entered is closed
// when the first write is held.
type gatedStore struct {
	memStore
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (s *gatedStore) Save(ctx context.Context, p int, key string, r *StateRecord) error {
	s.once.Do(func() { close(s.entered) })
	<-s.gate
	return s.memStore.Save(ctx, p, key, r)
}

// Law 1: an event counts as handled (its offset may be committed) only once
// the state it produced is acknowledged by the state topic.
func TestApplyWaitsForTheStateAck(t *testing.T) {
	store := &gatedStore{gate: make(chan struct{}), entered: make(chan struct{})}
	eng := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Store, c.Raw = schedule.Defaults(), map[contract.Vendor]Caller{contract.Megvii: &fakeCaller{answer: okAnswer}}, store, &memRaw{}
	}))
	eng.AddPartition(0, nil)
	issued := time.Now()
	done := eng.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "a", IssuedAt: &issued, ReceivedAt: issued})
	// The write is under way and held: nothing else could acknowledge it.
	select {
	case <-store.entered:
	case <-time.After(3 * time.Minute):
		t.Fatal("the state was never written")
	}
	select {
	case <-done:
		t.Fatal("the event counted as handled before its state was acknowledged")
	default:
	}
	close(store.gate)
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("never acknowledged")
	}
	if r := store.get("megvii:a"); r == nil || r.State == nil || r.State.IssuedAt == nil {
		t.Fatalf("stored %+v", r)
	}
}

func TestPendingGaugeFollowsItems(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "c1", Status: "OK"})
	r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "c2"})
	pending := func() int {
		r.eng.mu.Lock()
		defer r.eng.mu.Unlock()
		return r.eng.pending[contract.Megvii]
	}
	if n := pending(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	r.settle(t)
	if n := pending(); n != 1 {
		t.Fatalf("pending after c1's harvest %d, want 1", n)
	}
	r.eng.RevokePartition(0)
	r.eng.mu.Lock()
	defer r.eng.mu.Unlock()
	if r.eng.pending[contract.Megvii] != 0 {
		t.Fatalf("pending after revocation %d", r.eng.pending[contract.Megvii])
	}
}

// gatedRaw holds every publish until gate is closed.
type gatedRaw struct{ gate chan struct{} }

func (g gatedRaw) WriteMessages(ctx context.Context, _ ...contract.Message) error {
	select {
	case <-g.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestVendorSlotIsFreedWhileTheAnswerIsRecorded: with one call allowed at a
// time, a second verification is called while the first one's answer is
// still being published: recording is not the vendor's concurrency (a
// broker's acks=all round trip held the slot before, 0.61 of capacity at
// 5 ms per publish against 0.90 now in the harvester benchmark).
func TestVendorSlotIsFreedWhileTheAnswerIsRecorded(t *testing.T) {
	store := &memStore{}
	gate := make(chan struct{})
	caller := &fakeCaller{store: store, answer: okAnswer}
	clk := clock.NewSim(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), 0, nil)
	eng := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.Now, c.Source = schedule.Defaults(), map[contract.Vendor]Caller{contract.Megvii: caller}, map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 1}}, store, gatedRaw{gate}, clk.Now, "/test"
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	defer func() { close(gate); cancel(); <-done }()
	eng.AddPartition(0, nil)
	for _, id := range []string{"v1", "v2"} {
		<-eng.Apply(0, contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: id, Status: "OK", ReceivedAt: clk.Now()})
	}
	for end := time.Now().Add(3 * time.Minute); len(caller.order()) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("calls %v: the second waited for the first answer's publish", caller.order())
		}
	}
}
