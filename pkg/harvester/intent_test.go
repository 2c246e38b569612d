package harvester

import (
	"slices"
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
