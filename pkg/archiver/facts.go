package archiver

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/flexjson"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// Facts are what one response says about the verification, normalized.
// Identity is unmasked here: parts live only in the store.
type Facts struct {
	FlowStatus string               `json:"flow_status,omitempty"`
	BizNo      string               `json:"biz_no,omitempty"`
	Passed     *bool                `json:"passed,omitempty"`
	Liveness   *contract.Liveness   `json:"liveness,omitempty"`
	FaceMatch  []contract.FaceMatch `json:"face_match,omitempty"`
	Identity   *contract.Identity   `json:"identity,omitempty"`
	// VerifiedAt (Megvii) is the verify time the answer gives
	// (return_verify_time=1).
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// IDExceptions (Megvii) are verify_result's id_exceptions.
	IDExceptions *contract.IDExceptions `json:"id_exceptions,omitempty"`
	Attempts     []contract.Attempt     `json:"attempts,omitempty"`
	Billing      *contract.Billing      `json:"billing,omitempty"`
	// ExpectedImages (Megvii) are the media kinds the flow produced, as its
	// result tells: image_best (video, still, flash), selfie_front and
	// selfie_side (selfie), idcard_front and idcard_back (when the card's
	// side was photographed: front_side, back_side).
	ExpectedImages []string `json:"expected_images,omitempty"`
	// MediaRecorded (Baidu media/query) says whether the answer carried
	// any link.
	MediaRecorded *bool  `json:"media_recorded,omitempty"`
	Problem       string `json:"problem,omitempty"`
}

func ptrF(f flexjson.Float) *float64 {
	if !f.Valid {
		return nil
	}
	v := f.Value
	return &v
}

// ptrNonZero is ptrF for scores whose 0 means "not given": getall's
// reserved liveness_score and spoofing_score (001: 预留功能字段,当前返回为0),
// detail's score when only liveness ran (仅活体检测时返回为0).
func ptrNonZero(f flexjson.Float) *float64 {
	if !f.Valid || f.Value == 0 {
		return nil
	}
	return ptrF(f)
}

func ptrB(b flexjson.Bool) *bool {
	if !b.Valid {
		return nil
	}
	v := b.Value
	return &v
}

func ptrI(i flexjson.Int) *int {
	if !i.Valid {
		return nil
	}
	v := int(i.Value)
	return &v
}

// megviiAnswer is what a record takes from a get_result answer. The images
// are not part of it, so it is decoded from the rewritten body (blobs
// replaced by references: a few KB) rather than the original (megabytes of
// base64), which the archiver has already decoded once.
type megviiAnswer struct {
	Status         megvii.Status          `json:"status"`
	BizInfo        megvii.BizInfo         `json:"biz_info"`
	IDCardInfo     *megvii.IDCardInfo     `json:"idcard_info"`
	LivenessResult *megvii.LivenessResult `json:"liveness_result"`
	VerifyResult   *megvii.VerifyResult   `json:"verify_result"`
	VerifyTime     json.RawMessage        `json:"verify_time"` // megvii.VerifyTimeKey
}

// baiduDetail is result/detail without its base64 ID-card images, for the
// same reason.
type baiduDetail struct {
	VerifyResult    baidu.DetailScores   `json:"verify_result"`
	IDCardOCRResult *baidu.OCRResult     `json:"idcard_ocr_result"`
	IDCardConfirm   *baidu.IDCardConfirm `json:"idcard_confirm"`
}

// facts reads a successful response: rewritten is its body with every blob
// replaced by a reference, original the body as received (read only where
// the rewritten one no longer fits the vendor's types: getall's links).
// Bodies the typed decoders reject become a stated problem, not an error.
func facts(v contract.Vendor, endpoint string, original, rewritten []byte) *Facts {
	if v == contract.Megvii {
		var r megviiAnswer
		if err := json.Unmarshal(rewritten, &r); err != nil {
			return &Facts{Problem: "get_result answer not understood: " + err.Error()}
		}
		res := &megvii.Result{Status: r.Status, BizInfo: r.BizInfo, IDCardInfo: r.IDCardInfo, LivenessResult: r.LivenessResult, VerifyResult: r.VerifyResult}
		if len(r.VerifyTime) > 0 {
			res.Extra = map[string]json.RawMessage{megvii.VerifyTimeKey: r.VerifyTime}
		}
		return megviiFacts(res)
	}
	body := original
	if endpoint == baidu.EndpointDetail {
		body = rewritten
	}
	env, verr := baidu.Classify(endpoint, 200, body)
	if verr != nil {
		return &Facts{Problem: endpoint + " answer not understood: " + verr.Message}
	}
	switch endpoint {
	case baidu.EndpointGetAll:
		return getAllFacts(env.Result)
	case baidu.EndpointDetail:
		return detailFacts(env.Result)
	case baidu.EndpointMedia:
		return mediaFacts(env.Result)
	}
	return &Facts{}
}

// getAllFacts reads a getall result: the verdict, every attempt and the
// billing; liveness, face match and identity from the passed attempt, else
// the last.
func getAllFacts(result json.RawMessage) *Facts {
	var g baidu.GetAllResult
	if err := json.Unmarshal(result, &g); err != nil {
		return &Facts{Problem: "getall result not understood: " + err.Error()}
	}
	f := &Facts{}
	f.Billing = &contract.Billing{VerifyCount: ptrI(g.VerifyCount), OCRChargeCount: ptrI(g.OCRChargeCount),
		MatchChargeCount: ptrI(g.MatchChargeCount), VerifyChargeCount: ptrI(g.VerifyChargeCount)}
	passed := g.Passed()
	f.Passed = &passed
	if len(g.VerifyResult) > 0 {
		f.FlowStatus = baiduFlow(passed)
	}
	f.Attempts = []contract.Attempt{}
	for _, at := range g.VerifyResult {
		d := at.VerifyDetail
		f.Attempts = append(f.Attempts, contract.Attempt{Order: int(at.Order.Value), Passed: at.IsVerifyPassed.Value, Code: string(at.Code), Message: at.Message,
			VerifiedAt: baiduTime(at.VerifyTime), Charged: at.IsCharged.Value, ChargeType: at.ChargeType, Score: ptrF(d.Score), Threshold: ptrF(d.Threshold),
			LivenessScore: ptrNonZero(d.LivenessScore), SpoofingScore: ptrNonZero(d.SpoofingScore), RiskLevel: string(d.RiskLevel),
			RiskTag: d.RiskTag, IsDemote: ptrB(d.IsDemote), VerifyLogID: string(d.VerifyLogID), ChargeTime: baiduTime(at.ChargeTime),
			OCRCharged: ptrB(at.IsOCRCharge), OCRChargeTime: baiduTime(at.OCRChargeTime), OCRCount: ptrI(at.OCRCount)})
	}
	n := len(g.VerifyResult)
	if n == 0 {
		return f
	}
	last := g.VerifyResult[n-1]
	for _, at := range g.VerifyResult {
		if at.IsVerifyPassed.Value {
			last = at
		}
	}
	d := last.VerifyDetail
	// Reserved, currently 0 (001): kept only when the vendor fills them;
	// detail's liveness_score is the real one.
	f.Liveness = &contract.Liveness{Result: "unknown", Score: ptrNonZero(d.LivenessScore), SpoofingScore: ptrNonZero(d.SpoofingScore), Attacks: []contract.Attack{}}
	if d.Score.Valid {
		f.FaceMatch = []contract.FaceMatch{{Source: "baidu_verify", Score: ptrF(d.Score), Threshold: ptrF(d.Threshold)}}
	}
	f.Identity = baiduIdentity(last.IDCardConfirm, last.IDCardOCRResult)
	return f
}

// detailFacts reads a detail result (its ID-card images replaced).
func detailFacts(result json.RawMessage) *Facts {
	var d baiduDetail
	if err := json.Unmarshal(result, &d); err != nil {
		return &Facts{Problem: "detail result not understood: " + err.Error()}
	}
	// detail's success is "this verification succeeded" (document 001);
	// a failed one answers an error code and has no facts.
	passed := true
	f := &Facts{Passed: &passed, FlowStatus: baiduFlow(passed)}
	s := d.VerifyResult
	// spoofing 0: no synthetic-image check ran (001: 若未进行合成图检测,则返回0).
	f.Liveness = &contract.Liveness{Result: "unknown", Score: ptrF(s.LivenessScore), SpoofingScore: ptrNonZero(s.Spoofing), Attacks: []contract.Attack{}}
	if s.Score.Valid && s.Score.Value != 0 { // 0: only liveness ran, no comparison (001)
		f.FaceMatch = []contract.FaceMatch{{Source: "baidu_detail", Score: ptrF(s.Score)}}
	}
	f.Identity = baiduIdentity(d.IDCardConfirm, d.IDCardOCRResult)
	return f
}

// mediaFacts reads a media/query result: whether the flow was recorded.
func mediaFacts(result json.RawMessage) *Facts {
	var m baidu.MediaResult
	if len(result) > 0 && string(result) != "null" {
		if err := json.Unmarshal(result, &m); err != nil {
			return &Facts{Problem: "media/query result not understood: " + err.Error()}
		}
	}
	// 001: with recording off (the default) the answer has no video.
	recorded := len(m.URLs()) > 0
	return &Facts{MediaRecorded: &recorded}
}

// baiduFlow is a Baidu flow status from the vendor's verdict.
func baiduFlow(passed bool) string {
	if passed {
		return "success"
	}
	return "failure"
}

func baiduTime(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	if t, err := baidu.ParseTime(s); err == nil {
		return t.UTC().Format(time.RFC3339)
	}
	return s
}

func baiduIdentity(c *baidu.IDCardConfirm, o *baidu.OCRResult) *contract.Identity {
	if c != nil && (c.Name != "" || c.IDCardNumber != "") {
		return &contract.Identity{Name: c.Name, IDNumber: c.IDCardNumber, Source: "confirmed"}
	}
	if o != nil && (o.Name != "" || o.IDCardNumber != "") {
		return &contract.Identity{Name: o.Name, IDNumber: o.IDCardNumber, Source: "ocr"}
	}
	return nil
}

func megviiFacts(r *megvii.Result) *Facts {
	f := &Facts{FlowStatus: string(r.Status), BizNo: r.BizInfo.BizNo, ExpectedImages: expectedImages(r), Liveness: megviiLiveness(r.LivenessResult)}
	if vt, ok := r.VerifyTime(); ok {
		f.VerifiedAt = &vt
	}
	if v := r.VerifyResult; v != nil {
		f.FaceMatch = megviiFaceMatch(v)
		billed := v.Billed()
		f.Billing = &contract.Billing{Billed: &billed}
		if x := v.IDExceptions; x != nil && (x.IDAttacked.Valid || x.IDPhotoMonochrome.Valid) {
			f.IDExceptions = &contract.IDExceptions{IDAttacked: ptrI(x.IDAttacked), IDPhotoMonochrome: ptrI(x.IDPhotoMonochrome)}
		}
	}
	if c := r.IDCardInfo; c != nil {
		if c.Number != "" || c.Name != "" {
			f.Identity = &contract.Identity{Name: c.Name, IDNumber: c.Number, Source: "confirmed"}
		} else if c.FrontSide != nil && c.FrontSide.OCRResult != nil && (c.FrontSide.OCRResult.Name != "" || c.FrontSide.OCRResult.IDCardNumber != "") {
			o := c.FrontSide.OCRResult
			f.Identity = &contract.Identity{Name: o.Name, IDNumber: o.IDCardNumber, Source: "ocr"}
		}
	}
	return f
}

// megviiLiveness is a liveness_result as a record states it (nil without
// one).
func megviiLiveness(l *megvii.LivenessResult) *contract.Liveness {
	if l == nil {
		return nil
	}
	res := "unknown"
	switch strings.ToUpper(strings.TrimSpace(l.Result)) {
	case "PASS":
		res = "pass"
	case "FAIL":
		res = "fail"
	}
	proc, inferred := l.Procedure()
	out := &contract.Liveness{Result: res, Procedure: proc, ProcedureInferred: inferred, Attacks: []contract.Attack{}}
	for _, at := range l.FaceGenuineness.Attacks() {
		out.Attacks = append(out.Attacks, contract.Attack{Kind: at.Kind, Score: at.Confidence, Threshold: at.Threshold, Suspected: at.Suspected})
	}
	if g := l.FaceGenuineness; g != nil {
		out.SelfieInconsistent = ptrI(g.SelfieInconsistent)
		out.SelfieMetadataInconsistent = ptrI(g.SelfieMetadataInconsistent)
	}
	return out
}

// megviiFaceMatch is verify_result's comparisons, in a fixed order, and its
// error message as a comparison that failed.
func megviiFaceMatch(v *megvii.VerifyResult) []contract.FaceMatch {
	var out []contract.FaceMatch
	add := func(src string, s *megvii.Score) {
		if s == nil {
			return
		}
		fm := contract.FaceMatch{Source: src, Score: ptrF(s.Confidence)}
		if len(s.Thresholds) > 0 {
			fm.Thresholds = map[string]float64{}
			for k, t := range s.Thresholds {
				if t.Valid {
					fm.Thresholds[k] = t.Value
				}
			}
		}
		out = append(out, fm)
	}
	add("idcard_photo", v.ResultIDCardPhoto)
	add("idcard_datasource", v.ResultIDCardDatasource)
	add("faceid", v.ResultFaceID)
	for _, n := range v.RefNumbers() {
		s := v.Refs[n]
		add("ref"+strconv.Itoa(n), &s)
	}
	if v.ErrorMessage != nil && strings.TrimSpace(*v.ErrorMessage) != "" {
		out = append(out, contract.FaceMatch{Source: "comparison", Error: strings.TrimSpace(*v.ErrorMessage)})
	}
	return out
}
