package harvester

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// A state without its first-seen time (and no issue time) has its window
// start in year 1, before what Unix nanoseconds can tell: such deadlines,
// and every one before 1678, are the earliest of all, so the verification
// is taken first (and closes as expired without a call), not after the
// ones with time left, behind which it would wait for a slot it does not
// need: with one slot, the first dispatch closes both and calls soon, and
// soon2 waits.
func TestDeadlinesBeforeUnixNanosecondsGoFirst(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	now := r.clk.Now()
	state := func(id string, firstSeen time.Time) *StateRecord {
		return &StateRecord{State: &schedule.State{Vendor: contract.Megvii, ID: id, FirstSeen: firstSeen, FlowStatus: "OK", NextAt: now}}
	}
	r.eng.AddPartition(1, map[string]*StateRecord{
		"megvii:soon":  state("soon", now.Add(-23*time.Hour)),
		"megvii:soon2": state("soon2", now.Add(-22*time.Hour)),
		"megvii:zero":  state("zero", time.Time{}),
		"megvii:y1000": state("y1000", time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)),
	})
	r.step(t)
	for _, id := range []string{"zero", "y1000"} {
		if rec := r.store.get("megvii:" + id); rec == nil || rec.ClosedAt == nil {
			t.Fatalf("%s not closed in the first dispatch: the verifications past their deadlines go first", id)
		}
	}
	if calls := r.caller.order(); !slices.Equal(calls, []string{"soon"}) {
		t.Fatalf("calls %v: want one, for the verification nearest its deadline", calls)
	}
}

// failingRecorder cannot read the raw topic.
type failingRecorder struct{}

func (failingRecorder) Mark(context.Context, string) (int, int64, error) {
	return 0, 0, errors.New("broker unreachable")
}

func (failingRecorder) Find(context.Context, string, int, int64, []string) ([]contract.Message, error) {
	return nil, errors.New("broker unreachable")
}

// When the raw topic cannot be read before a one-shot call (Mark) or while
// settling a restored intent (Find), the verification waits five seconds:
// that NextAt is stored like any change of its state, so the next owner
// reads the same schedule.
func TestRecorderFailureDelayIsStored(t *testing.T) {
	cases := []struct {
		name  string
		setup func(r *rig)
	}{
		{"mark", func(r *rig) {
			r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "i1", Status: "OK"})
		}},
		{"find", func(r *rig) {
			now := r.clk.Now()
			issued := now.Add(-2 * time.Hour)
			st := &schedule.State{Vendor: contract.Megvii, ID: "i1", FirstSeen: issued, IssuedAt: &issued, FlowStatus: "OK", NextAt: now.Add(-10 * time.Minute),
				Attempts: 1, Intent: &schedule.Intent{Attempt: 1, At: now.Add(-10 * time.Minute)}}
			r.eng.AddPartition(0, map[string]*StateRecord{st.Key(): {State: st}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newSteppedRig(t, 1, okAnswer)
			r.eng.cfg.Recorder = failingRecorder{}
			c.setup(r)
			r.step(t)
			want := r.clk.Now().Add(recorderRetry)
			if st, ok := r.eng.Snapshot("megvii:i1"); !ok || !st.NextAt.Equal(want) {
				t.Fatalf("in memory: NextAt %v, want %v", st.NextAt, want)
			}
			if rec := r.store.get("megvii:i1"); rec == nil || rec.State == nil || !rec.State.NextAt.Equal(want) {
				t.Fatalf("stored: %+v, want NextAt %v", rec, want)
			}
			if calls := r.caller.order(); len(calls) != 0 {
				t.Fatalf("called without reading the raw topic: %v", calls)
			}
		})
	}
}

// A restored verification of a vendor the engine has no caller for waits
// like any other and, once due, is kept and never called; dispatch goes on
// with the vendors it has.
func TestDueItemOfAVendorWithoutACaller(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	now := r.clk.Now()
	r.eng.AddPartition(1, map[string]*StateRecord{"baidu:b1": {State: &schedule.State{Vendor: contract.Baidu, ID: "b1", FirstSeen: now,
		CompletedAt: &now, NextAt: now.Add(time.Minute)}}})
	r.clk.Advance(2 * time.Minute)
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "m1", Status: "OK"})
	r.step(t)
	if rec := r.store.get("megvii:m1"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("the Megvii verification was not harvested: %+v", rec)
	}
	if _, ok := r.eng.Snapshot("baidu:b1"); !ok || r.eng.Pending() != 1 {
		t.Fatalf("the Baidu verification was not kept (%d pending)", r.eng.Pending())
	}
	if next := r.eng.NextWake(); !next.IsZero() {
		t.Fatalf("the Baidu verification still waits, for %v", next)
	}
}

// Work that makes no vendor call takes no vendor slot (law 4): expired
// verifications have the earliest deadlines, so they head the due heap;
// closing them must not hold the slots that a verification still in its
// window needs.
func TestClosingWithoutACallTakesNoSlot(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	long := r.clk.Now().Add(-30 * 24 * time.Hour)
	for _, id := range []string{"old1", "old2", "old3"} {
		r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: id, IssuedAt: &long, ReceivedAt: long})
	}
	issued := r.clk.Now()
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "live", Status: "OK", IssuedAt: &issued})
	r.step(t)
	for _, id := range []string{"old1", "old2", "old3"} {
		if rec := r.store.get("megvii:" + id); rec == nil || rec.ClosedAt == nil {
			t.Fatalf("%s not closed: %+v", id, rec)
		}
	}
	if calls := r.caller.order(); !slices.Equal(calls, []string{"live"}) {
		t.Fatalf("calls in the first step %v, want [live]: the closes without a call held the one slot", calls)
	}
}
