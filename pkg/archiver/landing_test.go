package archiver

import (
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
)

// A getall answer (document 001's shape) with one attempt that failed
// liveness (223120), and a detail answer for a success.
const (
	getallLivenessFailed = `{"success":true,"log_id":"1","result":{"verify_count":1,"ocr_charge_count":0,"match_charge_count":0,"verify_charge_count":1,
"verify_result":[{"order":1,"is_verify_passed":false,"code":"223120","message":"活体检测未通过","verify_time":"2026-06-01 10:00:00","is_charged":true,
"charge_type":"verify","verify_detail":{"face_image":"","verify_log_id":"","threshold":80,"liveness_score":0}}]}}`
	getallPassed = `{"success":true,"log_id":"1","result":{"verify_count":1,"ocr_charge_count":0,"match_charge_count":0,"verify_charge_count":1,
"verify_result":[{"order":1,"is_verify_passed":true,"code":"0","message":"","verify_time":"2026-06-01 10:00:00","is_charged":true,
"charge_type":"verify","verify_detail":{"face_image":"","verify_log_id":"","score":90,"threshold":80,"liveness_score":0}}]}}`
	detailSuccess = `{"success":true,"result":{"verify_result":{"score":93.7,"liveness_score":0.96,"spoofing":0}},"log_id":"2"}`
)

// TestLandingNeverDecidesTheRecord (law 8): the record's flow_status and
// passed are the vendor's (getall's attempts, detail's success), whatever
// page the browser opened and whatever flow status the terminal carries (a
// harvester before this rule copied the landing there); the landing is kept
// as a hint.
func TestLandingNeverDecidesTheRecord(t *testing.T) {
	schema := schematest.Compile(t)
	part := func(ep, body string) *Part {
		return &Part{ID: ep, Vendor: contract.Baidu, VerificationID: "b", Endpoint: ep, HTTPStatus: 200, Facts: facts(contract.Baidu, ep, []byte(body), []byte(body))}
	}
	cases := []struct {
		name       string
		terminal   string // the terminal's flow status
		landing    string
		parts      []*Part
		wantFlow   string
		wantPassed *bool
	}{
		{"forged success, liveness failed", "success", "success", []*Part{part(baidu.EndpointGetAll, getallLivenessFailed)}, "failure", ptrBool(false)},
		{"failure page, vendor passed", "failure", "failure", []*Part{part(baidu.EndpointGetAll, getallPassed), part(baidu.EndpointDetail, detailSuccess)}, "success", ptrBool(true)},
		{"detail's success alone", "", "failure", []*Part{part(baidu.EndpointDetail, detailSuccess)}, "success", ptrBool(true)},
		{"no vendor answer: no verdict", "success", "success", nil, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tm := contract.Terminal{Vendor: contract.Baidu, VerificationID: "b", Outcome: contract.OutcomeHarvested, FlowStatus: c.terminal, Landing: c.landing,
				DecidedAt: time.Date(2026, 6, 1, 10, 1, 0, 0, time.UTC)}
			rec := buildRecord(tm, Evidence{Responses: c.parts}, contract.ObjectRef{Key: "k", SHA256: sha64, Size: 1, ContentType: "application/json"}, tm.DecidedAt, true)
			schematest.Validate(t, schema, mustJSON(t, rec))
			if rec.FlowStatus != c.wantFlow || (rec.Passed == nil) != (c.wantPassed == nil) || (rec.Passed != nil && *rec.Passed != *c.wantPassed) {
				t.Fatalf("flow_status %q passed %v, want %q %v", rec.FlowStatus, fmtBool(rec.Passed), c.wantFlow, fmtBool(c.wantPassed))
			}
			if rec.Landing != c.landing {
				t.Fatalf("landing %q, want %q", rec.Landing, c.landing)
			}
		})
	}
	// Megvii's flow status comes from signed callbacks and get_result: kept.
	tm := contract.Terminal{Vendor: contract.Megvii, VerificationID: "m", Outcome: contract.OutcomeExpired, FlowStatus: "PROCESSING"}
	if rec := buildRecord(tm, Evidence{}, contract.ObjectRef{}, tm.DecidedAt, true); rec.FlowStatus != "PROCESSING" {
		t.Fatalf("megvii flow status %q", rec.FlowStatus)
	}
}

const sha64 = "0000000000000000000000000000000000000000000000000000000000000000"

func ptrBool(b bool) *bool { return &b }

func fmtBool(b *bool) string {
	if b == nil {
		return "absent"
	}
	if *b {
		return "true"
	}
	return "false"
}
