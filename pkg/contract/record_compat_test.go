package contract_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
)

// oldRecord is a record as archivers wrote it before record.v1 gained its
// optional fields (procedure_inferred, the selfie facts, id_exceptions, the
// attempts' billing and risk facts, callback_received_at).
const oldRecord = `{"schema":"faceharvest.record.v1","vendor":"baidu","verification_id":"tok-1","biz_no":"loan-1","outcome":"harvested",
"flow_status":"success","passed":true,"landing":"success",
"liveness":{"result":"unknown","score":0.97,"attacks":[]},
"face_match":[{"source":"baidu_verify","score":89.9,"threshold":80}],
"identity":{"name":"张*","id_number":"362********232X","masked":true,"source":"confirmed"},
"attempts":[{"order":1,"passed":true,"code":"0","verified_at":"2023-10-10T02:10:10Z","charged":true,"charge_type":"verify","score":89.9,"threshold":80,"risk_level":"1"}],
"billing":{"verify_count":1,"ocr_charge_count":1,"match_charge_count":1,"verify_charge_count":1},
"media":[],"media_recording":"not_recorded","problems":[],
"timestamps":{"completed_at":"2023-10-10T02:10:10Z","decided_at":"2023-10-10T02:15:00Z","archived_at":"2023-10-10T02:15:01Z"},
"responses":[{"ce_id":"x","endpoint":"result/getall","http_status":200}],"window_left_seconds":259000}`

// TestRecordV1StaysCompatible: a consumer validating with the current
// schema accepts records written before the optional fields existed, and
// records that carry all of them; an old record decodes and re-encodes
// without gaining any of them.
func TestRecordV1StaysCompatible(t *testing.T) {
	s := schematest.Compile(t)
	schematest.Validate(t, s, []byte(oldRecord))
	var old contract.Record
	if err := json.Unmarshal([]byte(oldRecord), &old); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(old)
	schematest.Validate(t, s, b)
	var back map[string]any
	_ = json.Unmarshal(b, &back)
	if _, ok := back["id_exceptions"]; ok {
		t.Errorf("an old record gained id_exceptions: %s", b)
	}

	one, two, yes, no := 1, 2, true, false
	recv := time.Date(2026, 7, 1, 9, 0, 5, 0, time.UTC)
	rec := old
	rec.Vendor, rec.Landing = contract.Megvii, ""
	rec.Liveness = &contract.Liveness{Result: "pass", Procedure: "selfie", ProcedureInferred: true, Attacks: []contract.Attack{},
		SelfieInconsistent: &one, SelfieMetadataInconsistent: &two}
	rec.IDExceptions = &contract.IDExceptions{IDAttacked: &one, IDPhotoMonochrome: new(int)}
	rec.Attempts = []contract.Attempt{{Order: 1, Passed: true, Charged: true, ChargeTime: "2023-10-10T02:10:10Z", OCRCharged: &yes,
		OCRChargeTime: "2023-10-10T02:10:10Z", OCRCount: &two, RiskTag: "attack", IsDemote: &no, VerifyLogID: "4711"}}
	rec.Times.CallbackReceivedAt = &recv
	b, _ = json.Marshal(rec)
	schematest.Validate(t, s, b)

	// A consumer built against the first v1 ignores what it does not know.
	var consumer struct {
		Outcome  string `json:"outcome"`
		Attempts []struct {
			Order   int  `json:"order"`
			Charged bool `json:"charged"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(b, &consumer); err != nil || consumer.Outcome != "harvested" || len(consumer.Attempts) != 1 || !consumer.Attempts[0].Charged {
		t.Fatalf("an old consumer reads %+v (%v)", consumer, err)
	}
}
