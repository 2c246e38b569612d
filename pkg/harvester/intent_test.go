package harvester

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// intentRig restores one Megvii verification whose get_result call (attempt
// 1) a previous owner started ten minutes ago, marking the raw topic at
// mark, with recorded already in the raw topic; the engine resolves the
// intent through the in-memory Recorder in one step.
func intentRig(t *testing.T, mark int64, recorded ...contract.Message) *rig {
	r := newSteppedRig(t, 1, okAnswer)
	r.eng.cfg.Recorder = &memRecorder{raw: r.raw}
	r.raw.msgs = append(r.raw.msgs, recorded...)
	now := r.clk.Now()
	issued, completed := now.Add(-2*time.Hour), now.Add(-time.Hour)
	st := &schedule.State{Vendor: contract.Megvii, ID: "i1", FirstSeen: issued, IssuedAt: &issued, CompletedAt: &completed, FlowStatus: "OK",
		NextAt: now.Add(-10 * time.Minute), Attempts: 1, Intent: &schedule.Intent{Attempt: 1, At: now.Add(-10 * time.Minute), RawPartition: 0, RawOffset: mark}}
	r.eng.AddPartition(0, map[string]*StateRecord{st.Key(): {State: st}})
	r.step(t)
	return r
}

func (r *rig) resolved(outcome string) float64 {
	return testutil.ToFloat64(r.eng.m.intentsResolved.WithLabelValues(outcome))
}

// closedTerminal returns the terminal the engine published last for i1.
func (r *rig) closedTerminal(t *testing.T) contract.Terminal {
	t.Helper()
	if rec := r.store.get("megvii:i1"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("not closed: %+v", rec)
	}
	msgs := r.raw.read("megvii:i1")
	var term contract.Terminal
	if err := jsonUnmarshal(msgs[len(msgs)-1].Value, &term); err != nil || headerID(msgs[len(msgs)-1]) != contract.TerminalID(contract.Megvii, "i1") {
		t.Fatalf("last raw message is no terminal: %v", err)
	}
	return term
}

// Recorded: the previous owner's answer is in the raw topic after its mark.
// The harvest goes on from it, without a second call of the one-shot
// get_result, and the terminal names the recorded answer.
func TestIntentResolvedFromTheRecordedAnswer(t *testing.T) {
	answer := response("i1", 1, `{"status":"OK"}`)
	r := intentRig(t, 0, answer)
	if calls := r.caller.order(); len(calls) != 0 {
		t.Fatalf("called again after a recorded answer: %v", calls)
	}
	term := r.closedTerminal(t)
	if term.Outcome != contract.OutcomeHarvested || !slices.Contains(term.Responses, headerID(answer)) {
		t.Fatalf("terminal %+v, want harvested from %s", term, headerID(answer))
	}
	if r.resolved("recorded") != 1 || r.resolved("unrecorded") != 0 || r.resolved("terminal") != 0 {
		t.Fatal("not counted as recorded")
	}
}

// Never recorded: nothing of the attempt after the mark (an answer before
// it is an older one's, and does not count): the answer was lost with the
// previous owner, and the call is made again, as attempt 2.
func TestIntentNeverRecordedIsCalledAgain(t *testing.T) {
	older := response("i1", 1, `{"status":"OK"}`)
	r := intentRig(t, 1, older)
	if calls := r.caller.order(); len(calls) != 1 {
		t.Fatalf("calls %v, want one repeat", calls)
	}
	term := r.closedTerminal(t)
	want := contract.ResponseID(contract.Megvii, "i1", megvii.EndpointGetResult, 2)
	if term.Outcome != contract.OutcomeHarvested || !slices.Equal(term.Responses, []string{want}) {
		t.Fatalf("terminal %+v, want harvested from %s only", term, want)
	}
	if r.resolved("unrecorded") != 1 || r.resolved("recorded") != 0 || r.resolved("terminal") != 0 {
		t.Fatal("not counted as unrecorded")
	}
}

// Terminal recorded: the previous owner published the terminal but did not
// store the closed marker: the verification closes, with no call and no
// second terminal.
func TestIntentWithARecordedTerminalCloses(t *testing.T) {
	r := intentRig(t, 0, response("i1", 1, `{"status":"OK"}`), terminal("i1"))
	if calls := r.caller.order(); len(calls) != 0 {
		t.Fatalf("called after the terminal: %v", calls)
	}
	if rec := r.store.get("megvii:i1"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("not closed: %+v", rec)
	}
	if n := len(r.raw.read("megvii:i1")); n != 2 || r.eng.Pending() != 0 {
		t.Fatalf("%d raw messages (want the 2 recorded), %d pending", n, r.eng.Pending())
	}
	if r.resolved("terminal") != 1 || r.resolved("recorded") != 0 || r.resolved("unrecorded") != 0 {
		t.Fatal("not counted as terminal")
	}
}

// gatedIntentStore holds the first write of an intent until released.
type gatedIntentStore struct {
	*memStore
	held    chan struct{} // receives when the intent's write is held
	release chan struct{}
	once    sync.Once
}

func (s *gatedIntentStore) Save(ctx context.Context, p int, key string, r *StateRecord) error {
	if r != nil && r.State != nil && r.State.Intent != nil {
		first := false
		s.once.Do(func() { first = true })
		if first {
			s.held <- struct{}{}
			<-s.release
		}
	}
	return s.memStore.Save(ctx, p, key, r)
}

// A one-shot call is made only while its intent is young enough for a
// restoring replica to wait for it (law 3): that replica waits IntentGrace
// (the call's timeout and a margin) from the intent's time, which is taken
// before the intent is stored. An intent that took longer than the margin
// to be stored is left to settle like a restored one, instead of starting
// a call that could still be running when another replica, finding no
// answer, calls again.
func TestSlowIntentWriteDefersTheCall(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	gs := &gatedIntentStore{memStore: r.store, held: make(chan struct{}), release: make(chan struct{})}
	r.eng.w.store = gs
	r.eng.cfg.Recorder = &memRecorder{raw: r.raw}
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "s1", Status: "OK"})
	at := r.clk.Now()
	r.eng.dispatch(r.ctx)
	<-gs.held
	r.clk.Set(at.Add(intentMargin)) // the intent is stored a margin later
	close(gs.release)
	eventually(t, "the engine is quiet", r.eng.quiet)
	if calls := r.caller.order(); len(calls) != 0 {
		t.Fatalf("called %v with an intent stored %v after its time", calls, intentMargin)
	}
	rec := r.store.get("megvii:s1")
	if rec == nil || rec.State == nil || rec.State.Intent == nil {
		t.Fatalf("the intent is not kept: %+v", rec)
	}
	// Past the grace, the intent is resolved: nothing was recorded, so the
	// call is made.
	r.clk.Set(at.Add(r.eng.cfg.IntentGrace))
	r.settle(t)
	if calls := r.caller.order(); !slices.Equal(calls, []string{"s1"}) {
		t.Fatalf("calls %v after the grace, want [s1]", calls)
	}
}
