package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Summary is what a run of the workload showed, as --summary-out writes it
// (JSON) and the end-to-end test reads it; the summary devstack prints is
// made from it.
type Summary struct {
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Planned counts the workload's verifications by class, Entries by how
	// they reached the pipeline; Issued the tokens issued through ingest.
	Planned map[class]int `json:"planned"`
	Entries map[entry]int `json:"entries"`
	Issued  issuedCount   `json:"issued"`
	// Verifications is how many records the plan expects; Records how
	// many came (by ce_id), Missing the difference; Duplicates the records
	// published again.
	Verifications int `json:"verifications"`
	Records       int `json:"records"`
	Missing       int `json:"missing"`
	Duplicates    int `json:"duplicates"`
	// ByOutcome counts the records by "<vendor> <outcome>".
	ByOutcome map[string]int `json:"by_outcome"`
	// WindowLeftSeconds spreads the window left at harvest over the
	// harvested records; CompletionToRecordSeconds the time from a flow's
	// completion to its record.
	WindowLeftSeconds struct {
		Min float64 `json:"min"`
		P50 float64 `json:"p50"`
		Max float64 `json:"max"`
	} `json:"window_left_seconds"`
	CompletionToRecordSeconds struct {
		P50   float64 `json:"p50"`
		P99   float64 `json:"p99"`
		Count int     `json:"count"`
	} `json:"completion_to_record_seconds"`
	Media struct {
		Stored       int   `json:"stored"`
		StoredBytes  int64 `json:"stored_bytes"`
		LargestBytes int64 `json:"largest_bytes"`
		Expired      int   `json:"expired"`
		Refused      int   `json:"refused"`
	} `json:"media"`
	Images imageTally `json:"megvii_images"`
	// ObjectsReferenced are the objects the records reference (evidence
	// documents and stored media), ObjectsPresent those the store has.
	ObjectsReferenced int `json:"objects_referenced"`
	ObjectsPresent    int `json:"objects_present"`
	// ServedTwice counts the Megvii answers the simulator served twice (a
	// spent call repeated); StoreRetries the archivers' store operations
	// retried (while the store was down).
	ServedTwice  int          `json:"megvii_served_twice"`
	StoreRetries float64      `json:"store_retries"`
	Chaos        *chaosRun    `json:"chaos,omitempty"`
	Abuse        *abuseResult `json:"abuse,omitempty"`
	// Unexpected is every finding that fails the run.
	Unexpected []string `json:"unexpected"`
	// OK: every verification has its expected record, nothing unexpected,
	// every referenced object in the store, no Megvii answer served twice.
	OK bool `json:"ok"`
	// Audit and Ledger are the checks after the workload, when they ran.
	Audit  *auditSummary `json:"audit,omitempty"`
	Ledger *ledgerProof  `json:"ledger,omitempty"`
}

// buildSummary makes the summary of a workload from its plan and what was
// collected and verified.
func buildSummary(plan []planned, issued issuedCount, c *collector, v verified, chaos *chaosRun, abused *abuseResult, elapsed time.Duration) Summary {
	sm := Summary{ElapsedSeconds: elapsed.Seconds(), Issued: issued, Verifications: len(c.want), Records: len(c.got),
		Missing: max(0, len(c.want)-len(c.got)), Duplicates: c.dups, ByOutcome: map[string]int{}, Images: tallyImages(c.got),
		ObjectsReferenced: v.objects, ObjectsPresent: v.present, ServedTwice: v.servedTwice, StoreRetries: v.storeRetries,
		Chaos: chaos, Abuse: abused, Unexpected: append([]string{}, c.mismatched...)}
	sm.Planned, sm.Entries = planCounts(plan)
	var window, e2e []float64
	for _, r := range c.got {
		sm.ByOutcome[string(r.Vendor)+" "+r.Outcome]++
		if r.Outcome == contract.OutcomeHarvested {
			window = append(window, r.WindowLeftSeconds)
		}
		if r.Times.CompletedAt != nil {
			e2e = append(e2e, r.Times.ArchivedAt.Sub(*r.Times.CompletedAt).Seconds())
		}
		for _, m := range r.Media {
			switch m.Status {
			case contract.MediaStored:
				sm.Media.Stored++
				sm.Media.StoredBytes += m.Size
				sm.Media.LargestBytes = max(sm.Media.LargestBytes, m.Size)
			case contract.MediaExpired:
				sm.Media.Expired++
			case contract.MediaRefused:
				sm.Media.Refused++
			}
		}
	}
	sm.WindowLeftSeconds.Min, sm.WindowLeftSeconds.P50, sm.WindowLeftSeconds.Max = pct(window, 0), pct(window, 0.5), pct(window, 1)
	sm.CompletionToRecordSeconds.P50, sm.CompletionToRecordSeconds.P99, sm.CompletionToRecordSeconds.Count = pct(e2e, 0.5), pct(e2e, 0.99), len(e2e)
	sm.OK = sm.Records == sm.Verifications && len(sm.Unexpected) == 0 && sm.ObjectsPresent == sm.ObjectsReferenced && sm.ServedTwice == 0
	return sm
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[min(len(xs)-1, int(p*float64(len(xs))))]
}

// printSummary prints the summary for a person, and where to look next.
func (s *stack) printSummary(sm Summary) {
	fmt.Printf("\n===== summary after %.0f s =====\n", sm.ElapsedSeconds)
	fmt.Printf("records: %d of %d verifications (duplicates re-published: %d)\n", sm.Records, sm.Verifications, sm.Duplicates)
	keys := make([]string, 0, len(sm.ByOutcome))
	for k := range sm.ByOutcome {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-24s %d\n", k, sm.ByOutcome[k])
	}
	w, e := sm.WindowLeftSeconds, sm.CompletionToRecordSeconds
	fmt.Printf("window left at harvest (s): min %.0f  p50 %.0f  max %.0f (windows: Megvii 180 s, Baidu media 300 s)\n", w.Min, w.P50, w.Max)
	fmt.Printf("completion -> record (s):   p50 %.1f  p99 %.1f over %d verifications with a completion\n", e.P50, e.P99, e.Count)
	fmt.Printf("objects stored: %d media (%.1f MB), %d expired links, %d refused links, %d evidence documents; %d of %d referenced objects found in the store\n",
		sm.Media.Stored, float64(sm.Media.StoredBytes)/1e6, sm.Media.Expired, sm.Media.Refused, sm.Records, sm.ObjectsPresent, sm.ObjectsReferenced)
	fmt.Printf("largest media object: %.1f MB\n", float64(sm.Media.LargestBytes)/1e6)
	fmt.Println(sm.Images)
	fmt.Printf("Megvii answers served twice (a spent call repeated): %d; archiver store operations retried: %.0f\n", sm.ServedTwice, sm.StoreRetries)
	for _, m := range sm.Unexpected {
		fmt.Println("  UNEXPECTED:", m)
	}
	if sm.Missing > 0 {
		fmt.Printf("  MISSING: %d verifications have no record yet (see %s/logs)\n", sm.Missing, s.o.dataDir)
	}
	fmt.Println("\nwhere to look next:")
	fmt.Printf("  metrics:   http://%s/metrics  http://%s/metrics  http://%s/metrics\n", s.addr("ingest-metrics"), s.addr("harvester-metrics"), s.addr("archiver-metrics"))
	fmt.Printf("  records:   kcat -b %s -C -t %s -f '%%k %%h\\n%%s\\n\\n' -e\n", s.broker, contract.DefaultResultsTopic)
	fmt.Printf("  evidence:  AWS_ACCESS_KEY_ID=faceharvest AWS_SECRET_ACCESS_KEY=faceharvest-dev-password aws --endpoint-url %s s3 ls --recursive s3://%s/\n", s.minio.Endpoint, bucket)
	fmt.Printf("  simulator: curl -s http://%s/sim/stats\n", s.addr("sim"))
	fmt.Printf("  audit:     http://%s (token %s); curl -H 'Authorization: Bearer %s' http://%s/search?q=<biz_no>\n", s.addr("auditor"), s.auditorTokens[0], s.auditorTokens[0], s.addr("auditor"))
}

// writeSummary writes the summary as JSON to --summary-out, if given.
func (s *stack) writeSummary(sm Summary) error {
	if s.o.summaryOut == "" {
		return nil
	}
	b, err := json.MarshalIndent(sm, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(s.o.summaryOut, append(b, '\n'), 0o644)
}
