package archiver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// TestBaiduAttemptBillingAndRiskFacts: 001's 核验及计费信息获取 (getall) gives
// per attempt charge_time, is_ocr_charge, ocr_charge_time, ocr_count and, in
// verify_detail, verify_log_id, risk_tag and is_demote (times read as China
// time, like verify_time, and written in UTC): the record's
// attempts carry them, so that a bill is reconciled without the evidence.
func TestBaiduAttemptBillingAndRiskFacts(t *testing.T) {
	schema := schematest.Compile(t)
	a := newTest(t, objstore.NewMemory(), nil)
	r := response(contract.Baidu, "tok-bill", "result/getall", vendordocs.MustExample("baidu_result_getall.json"))
	rec := archive(t, a, terminal(contract.Baidu, "tok-bill", contract.OutcomeHarvested), r)
	schematest.Validate(t, schema, mustJSON(t, rec))
	if len(rec.Attempts) != 1 {
		t.Fatalf("attempts %+v", rec.Attempts)
	}
	at := rec.Attempts[0]
	if at.ChargeTime != "2023-10-10T02:10:10Z" || at.OCRChargeTime != "2023-10-10T02:10:10Z" || at.OCRCharged == nil || !*at.OCRCharged ||
		at.OCRCount == nil || *at.OCRCount != 2 || at.RiskTag != "xxx" || at.IsDemote == nil || *at.IsDemote || at.VerifyLogID != "xxx" {
		b, _ := json.Marshal(at)
		t.Errorf("attempt %s lacks 001's billing and risk facts", b)
	}
}

// TestBaiduDetailSpoofingZeroIsNotAScore: 001's detail says spoofing is 0
// when no synthetic-image check ran (若未进行合成图检测,则返回0); its own
// example answers 0.0. The record leaves the score out rather than state a
// measured 0.
func TestBaiduDetailSpoofingZeroIsNotAScore(t *testing.T) {
	a := newTest(t, objstore.NewMemory(), nil)
	r := response(contract.Baidu, "tok-spoof", "result/detail", vendordocs.MustExample("baidu_result_detail.json"))
	rec := archive(t, a, terminal(contract.Baidu, "tok-spoof", contract.OutcomeHarvested), r)
	if rec.Liveness == nil || rec.Liveness.Score == nil {
		t.Fatalf("liveness %+v", rec.Liveness)
	}
	if s := rec.Liveness.SpoofingScore; s != nil {
		t.Errorf("spoofing score %v recorded; detail's 0 means not checked", *s)
	}
}

// TestMegviiRiskFacts: 000 gives id_exceptions (id_attacked,
// id_photo_monochrome) in verify_result, and selfie_inconsistent and
// selfie_metadata_inconsistent in a selfie's face_genuineness: the record
// carries them as sent.
func TestMegviiRiskFacts(t *testing.T) {
	schema := schematest.Compile(t)
	m, lr := megviiSelfieExamples(t)
	lr["result"], lr["procedure_type"] = "PASS", "selfie"
	fg := lr["face_genuineness"].(map[string]any)
	fg["selfie_inconsistent"], fg["selfie_metadata_inconsistent"] = "1", 2 // 000: "0"/"1", "0"/"1"/"2"
	m["liveness_result"], m["status"], m["biz_info"] = lr, "OK", map[string]any{"biz_id": "m-risk"}
	m["verify_result"].(map[string]any)["id_exceptions"] = map[string]any{"id_attacked": 1, "id_photo_monochrome": 0}
	delete(m, "images")
	r := response(contract.Megvii, "m-risk", "get_result", mustJSON(t, m))
	r.Params["return_image"] = "0"
	a := newTest(t, objstore.NewMemory(), nil)
	rec := archive(t, a, terminal(contract.Megvii, "m-risk", contract.OutcomeHarvested), r)
	schematest.Validate(t, schema, mustJSON(t, rec))
	x := rec.IDExceptions
	if x == nil || x.IDAttacked == nil || *x.IDAttacked != 1 || x.IDPhotoMonochrome == nil || *x.IDPhotoMonochrome != 0 {
		t.Errorf("id_exceptions %+v", x)
	}
	l := rec.Liveness
	if l == nil || l.SelfieInconsistent == nil || *l.SelfieInconsistent != 1 || l.SelfieMetadataInconsistent == nil || *l.SelfieMetadataInconsistent != 2 {
		b, _ := json.Marshal(l)
		t.Errorf("liveness %s lacks the selfie facts", b)
	}
}

// TestMegviiVerifyTimeIsCompletedAt: the harvester asks get_result for
// return_verify_time=1 (000: 需要返回验证发生的时间). The time the vendor
// gives is when the verification happened: the record's completed_at; the
// callback's receipt stays beside it.
func TestMegviiVerifyTimeIsCompletedAt(t *testing.T) {
	schema := schematest.Compile(t)
	var m map[string]any
	if err := json.Unmarshal(vendordocs.MustExample("megvii_get_result_ok_000.json"), &m); err != nil {
		t.Fatal(err)
	}
	verified := t0.Add(-3 * time.Minute).Truncate(time.Second)
	m["verify_time"], m["biz_info"] = verified.Unix(), map[string]any{"biz_id": "m-vt"}
	delete(m, "images")
	r := response(contract.Megvii, "m-vt", "get_result", mustJSON(t, m))
	r.Params["return_image"], r.Params["return_verify_time"] = "0", "1"
	a := newTest(t, objstore.NewMemory(), nil)
	term := terminal(contract.Megvii, "m-vt", contract.OutcomeHarvested)
	received := t0.Add(-time.Minute)
	term.CompletedAt = &received
	rec := archive(t, a, term, r)
	schematest.Validate(t, schema, mustJSON(t, rec))
	if c := rec.Times.CompletedAt; c == nil || !c.Equal(verified) {
		t.Errorf("completed_at %v, want the vendor's verify time %v", c, verified)
	}
	if c := rec.Times.CallbackReceivedAt; c == nil || !c.Equal(received) {
		t.Errorf("callback_received_at %v, want %v", c, received)
	}
}
