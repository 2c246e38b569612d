package harvester

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// The forward-looking deadline signal: while verifications are due and wait
// for a vendor slot, the earliest of their deadlines and how many close within
// the hour are exported, before anything is lost.
func TestDueDeadlineGauges(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	r.caller.gate = make(chan struct{})
	now := r.clk.Now()
	earliest := func() (float64, bool) {
		ch := make(chan prometheus.Metric, 4)
		r.eng.m.dueDeadline.Collect(ch)
		close(ch)
		for m := range ch {
			if m.Desc() != nil {
				return testutil.ToFloat64(m.(prometheus.Gauge)), true
			}
		}
		return 0, false
	}
	within := func() float64 { return testutil.ToFloat64(r.eng.m.dueWithinHour.WithLabelValues("megvii")) }
	if _, ok := earliest(); ok || within() != 0 {
		t.Fatal("a deadline exported with nothing due")
	}
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "blocker", Status: "OK"})
	if n := r.eng.dispatch(r.ctx); n != 1 {
		t.Fatalf("%d jobs started, want the blocker's, held at the gate with the only slot", n)
	}
	for id, issued := range map[string]time.Duration{"urgent": -(23*time.Hour + 30*time.Minute), "soon": -(23*time.Hour + 10*time.Minute), "later": -10 * time.Hour} {
		at := now.Add(issued)
		r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: id, IssuedAt: &at})
		r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: id, Status: "OK"})
	}
	want := float64(now.Add(-(23*time.Hour + 30*time.Minute)).Add(24 * time.Hour).Unix())
	r.eng.dispatch(r.ctx) // no slot: the three wait, and the gauges say so
	if v, ok := earliest(); !ok || v != want || within() != 2 {
		t.Fatalf("earliest due deadline %v (exported: %v), want %v; %v due within the hour, want 2", v, ok, want, within())
	}
	close(r.caller.gate)
	r.settle(t)
	if n := len(r.caller.order()); n != 4 {
		t.Fatalf("%d harvested, want 4", n)
	}
	if _, ok := earliest(); ok || within() != 0 {
		t.Fatal("a deadline exported with nothing due")
	}
}
