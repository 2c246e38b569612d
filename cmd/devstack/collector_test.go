package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

func recordJSON(t *testing.T, r contract.Record) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCollector: records under their ce_id, a re-publication with the same
// bytes counted as a duplicate, one with other bytes, a wrong ce_id and a
// value that is not JSON found; then the outcomes compared with the plan
// (a wrong outcome, a callback left to its last chance, a missing record
// is only missing); and the summary made from it.
func TestCollector(t *testing.T) {
	a := contract.Record{Vendor: contract.Megvii, VerificationID: "a", Outcome: contract.OutcomeHarvested, WindowLeftSeconds: 160}
	b := contract.Record{Vendor: contract.Megvii, VerificationID: "b", Outcome: contract.OutcomeHarvested, WindowLeftSeconds: 40}
	c := contract.Record{Vendor: contract.Baidu, VerificationID: "c", Outcome: contract.OutcomeLost}
	done := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := contract.Record{Vendor: contract.Baidu, VerificationID: "d", Outcome: contract.OutcomeHarvested, WindowLeftSeconds: 250,
		Media: []contract.MediaRef{{Status: contract.MediaStored, ObjectRef: contract.ObjectRef{Size: 300}}, {Status: contract.MediaStored, ObjectRef: contract.ObjectRef{Size: 100}},
			{Status: contract.MediaExpired}, {Status: contract.MediaRefused}}}
	d.Times.CompletedAt = &done
	d.Times.ArchivedAt = done.Add(3 * time.Second)
	id := func(r contract.Record) string { return contract.RecordID(r.Vendor, r.VerificationID) }
	want := map[string]expected{
		id(a):     {outcome: contract.OutcomeHarvested, callback: true},
		id(b):     {outcome: contract.OutcomeHarvested, callback: true},
		id(c):     {outcome: contract.OutcomeHarvested},
		id(d):     {outcome: contract.OutcomeHarvested},
		"missing": {outcome: contract.OutcomeHarvested},
	}
	col := newCollector(want)
	col.add(recordJSON(t, a), 0, id(a))
	col.add(recordJSON(t, a), 1, id(a)) // the same again: a duplicate
	if len(col.mismatched) != 0 || col.dups != 1 {
		t.Fatalf("a record published twice alike: %v, %d duplicates", col.mismatched, col.dups)
	}
	col.add(recordJSON(t, b), 2, id(b))
	col.add(recordJSON(t, c), 3, "wrong")
	col.add(recordJSON(t, d), 4, id(d))
	changed := d
	changed.WindowLeftSeconds = 1
	col.add(recordJSON(t, changed), 5, id(d))
	col.add(recordJSON(t, d), 6, id(d))
	col.add([]byte("{"), 7, "x")
	if col.complete() || col.harvested() != 3 || col.byOutcome()[contract.OutcomeLost] != 1 {
		t.Fatalf("complete %v, harvested %d, by outcome %v", col.complete(), col.harvested(), col.byOutcome())
	}
	col.checkOutcomes()
	for _, w := range []string{`baidu:c has ce_id "wrong"`, "baidu:d was published twice with different content (window_left_seconds: 250 != 1)",
		"a record at offset 7 is not JSON", "baidu:c is lost (), expected harvested", "megvii:b was harvested with 40 s left"} {
		if !strings.Contains(strings.Join(col.mismatched, "\n"), w) {
			t.Errorf("findings lack %q: %q", w, col.mismatched)
		}
	}
	if len(col.mismatched) != 6 {
		t.Errorf("%d findings, want 6: %q", len(col.mismatched), col.mismatched)
	}

	plan := planWorkload(opts{megvii: 2, baidu: 2})
	sm := buildSummary(plan, issuedCount{Megvii: 1}, col, verified{objects: 3, present: 3}, nil, nil, 90*time.Second)
	if sm.OK || sm.Verifications != 5 || sm.Records != 4 || sm.Missing != 1 || sm.Duplicates != 3 || len(sm.Unexpected) != 6 {
		t.Errorf("summary %+v", sm)
	}
	if sm.ByOutcome["megvii harvested"] != 2 || sm.ByOutcome["baidu harvested"] != 1 || sm.ByOutcome["baidu lost"] != 1 {
		t.Errorf("by outcome %v", sm.ByOutcome)
	}
	if w := sm.WindowLeftSeconds; w.Min != 40 || w.Max != 250 || w.P50 != 160 {
		t.Errorf("window left %+v", w)
	}
	if e := sm.CompletionToRecordSeconds; e.Count != 1 || e.P50 != 3 {
		t.Errorf("completion to record %+v", e)
	}
	if m := sm.Media; m.Stored != 2 || m.StoredBytes != 400 || m.LargestBytes != 300 || m.Expired != 1 || m.Refused != 1 {
		t.Errorf("media %+v", m)
	}
	if sm.Planned[classMegviiCallback] != 2 || sm.Issued.Megvii != 1 || sm.ElapsedSeconds != 90 {
		t.Errorf("planned %v, issued %+v, elapsed %v", sm.Planned, sm.Issued, sm.ElapsedSeconds)
	}
	// Complete and clean: OK; a Megvii answer served twice or an object
	// the store lacks fails it.
	clean := newCollector(map[string]expected{id(a): {outcome: contract.OutcomeHarvested, callback: true}})
	clean.add(recordJSON(t, a), 0, id(a))
	clean.checkOutcomes()
	for _, tc := range []struct {
		v  verified
		ok bool
	}{{verified{objects: 1, present: 1}, true}, {verified{objects: 1, present: 1, servedTwice: 1}, false}, {verified{objects: 2, present: 1}, false}} {
		if got := buildSummary(nil, issuedCount{}, clean, tc.v, nil, nil, 0).OK; got != tc.ok {
			t.Errorf("%+v: ok %v", tc.v, got)
		}
	}
}

// TestAbuseResult: ingest's answers that pass the abuse step, and each
// one that fails it.
func TestAbuseResult(t *testing.T) {
	good := abuseResult{Replayed: [2]int{200, 200}, SameCEID: true, ForgedCallback: 401, ForgedLanding: 401}
	if !good.ok() || good.String() != "replayed callback: 200 then 200, same ce_id true; forged callback: 401; forged landing: 401" {
		t.Fatalf("%v: ok %v", good, good.ok())
	}
	for _, bad := range []func(*abuseResult){
		func(a *abuseResult) { a.Replayed[1] = 500 },
		func(a *abuseResult) { a.SameCEID = false },
		func(a *abuseResult) { a.ForgedCallback = 200 },
		func(a *abuseResult) { a.ForgedLanding = 302 },
	} {
		a := good
		bad(&a)
		if a.ok() {
			t.Errorf("%v passes", a)
		}
	}
}
