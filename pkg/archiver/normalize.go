package archiver

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/flexjson"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// slot is a blob or link inside a response: a Megvii image with its byte
// range in the body, or a Baidu value with a setter that replaces it in the
// decoded answer.
type slot struct {
	kind       string
	url        bool
	dataURI    bool
	value      string
	start, end int
	set        func(any)
	attempt    int // Baidu getall: the order of the attempt it belongs to
}

// Baidu fields that hold media: links (getall, simple, media/query) or
// plain base64 (detail). The kind names the item in records.
var baiduFields = map[string]struct {
	kind string
	url  bool
}{
	"face_image":   {"face_image", true},
	"front_image":  {"idcard_front", true},
	"back_image":   {"idcard_back", true},
	"image":        {"face_image", true},
	"processVideo": {"process_video", true},
	"video":        {"video", true},
	"images":       {"image", true},
	"front_base64": {"idcard_front", false},
	"back_base64":  {"idcard_back", false},
}

// megviiKind names a Megvii image in records.
func megviiKind(name string) string {
	switch name {
	case megvii.ImageIDCardFront:
		return "idcard_front"
	case megvii.ImageIDCardBack:
		return "idcard_back"
	case megvii.ImageSelfieFront:
		return "selfie_front"
	case megvii.ImageSelfieSide:
		return "selfie_side"
	}
	return name
}

// megviiImageKinds are the media kinds a return_image value asks for of
// those the flow produced (expected): 4 all of them (000 and 002:
// 需要返回所有图像), the others their one image.
func megviiImageKinds(v string, expected []string) []string {
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(expected))
	for _, k := range expected {
		names = append(names, megviiImageName(k))
	}
	var out []string
	for _, name := range megvii.ImagesOf(megvii.ReturnImage(n), names) {
		out = append(out, megviiKind(name))
	}
	return out
}

// megviiImageName is megviiKind's inverse.
func megviiImageName(kind string) string {
	switch kind {
	case "idcard_front":
		return megvii.ImageIDCardFront
	case "idcard_back":
		return megvii.ImageIDCardBack
	case "selfie_front":
		return megvii.ImageSelfieFront
	case "selfie_side":
		return megvii.ImageSelfieSide
	}
	return kind
}

// expectedImages lists the media kinds a Megvii flow produced, from its
// result (megvii.Result.ExpectedImages).
func expectedImages(r *megvii.Result) []string {
	var out []string
	for _, n := range r.ExpectedImages() {
		out = append(out, megviiKind(n))
	}
	return out
}

// collect finds the media of a decoded Baidu answer, in a fixed order,
// wherever they are nested (the documents show idcard_images both beside and
// inside idcard_confirm).
func collect(root any) []slot {
	var out []slot
	obj, ok := root.(map[string]any)
	if !ok {
		return nil
	}
	var walk func(m map[string]any, attempt int)
	walk = func(m map[string]any, attempt int) {
		for _, k := range sortedKeys(m) {
			f, known := baiduFields[k]
			switch x := m[k].(type) {
			case string:
				// A link field that is not a link is kept as a rejected item:
				// media are never dropped silently.
				if known && strings.TrimSpace(x) != "" {
					out = append(out, slot{kind: f.kind, url: f.url, value: x, set: func(r any) { m[k] = r }, attempt: attempt})
				}
			case []any:
				for i, e := range x {
					switch y := e.(type) {
					case string:
						if known && f.url && strings.TrimSpace(y) != "" {
							out = append(out, slot{kind: f.kind, url: true, value: y, set: func(r any) { x[i] = r }, attempt: attempt})
						}
					case map[string]any:
						a := attempt
						if k == "verify_result" { // getall: one object per attempt
							a = attemptOrder(y, i)
						}
						walk(y, a)
					}
				}
			case map[string]any:
				walk(x, attempt)
			}
		}
	}
	walk(obj, 0)
	return out
}

// attemptOrder is a getall attempt's order, or its position (from 1) when
// it has none usable.
func attemptOrder(a map[string]any, i int) int {
	var o flexjson.Int
	if b, err := json.Marshal(a["order"]); err == nil && json.Unmarshal(b, &o) == nil && o.Valid && o.Value > 0 && o.Value < 1<<20 {
		return int(o.Value)
	}
	return i + 1
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

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
	f := &Facts{}
	switch endpoint {
	case baidu.EndpointGetAll:
		var g baidu.GetAllResult
		if err := json.Unmarshal(env.Result, &g); err != nil {
			return &Facts{Problem: "getall result not understood: " + err.Error()}
		}
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
		if n := len(g.VerifyResult); n > 0 {
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
		}
	case baidu.EndpointDetail:
		var d baiduDetail
		if err := json.Unmarshal(env.Result, &d); err != nil {
			return &Facts{Problem: "detail result not understood: " + err.Error()}
		}
		// detail's success is "this verification succeeded" (document 001);
		// a failed one answers an error code and has no facts.
		passed := true
		f.Passed, f.FlowStatus = &passed, baiduFlow(passed)
		s := d.VerifyResult
		// spoofing 0: no synthetic-image check ran (001: 若未进行合成图检测,则返回0).
		f.Liveness = &contract.Liveness{Result: "unknown", Score: ptrF(s.LivenessScore), SpoofingScore: ptrNonZero(s.Spoofing), Attacks: []contract.Attack{}}
		if s.Score.Valid && s.Score.Value != 0 { // 0: only liveness ran, no comparison (001)
			f.FaceMatch = []contract.FaceMatch{{Source: "baidu_detail", Score: ptrF(s.Score)}}
		}
		f.Identity = baiduIdentity(d.IDCardConfirm, d.IDCardOCRResult)
	case baidu.EndpointMedia:
		var m baidu.MediaResult
		if len(env.Result) > 0 && string(env.Result) != "null" {
			if err := json.Unmarshal(env.Result, &m); err != nil {
				return &Facts{Problem: "media/query result not understood: " + err.Error()}
			}
		}
		// 001: with recording off (the default) the answer has no video.
		recorded := len(m.URLs()) > 0
		f.MediaRecorded = &recorded
	}
	return f
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
	f := &Facts{FlowStatus: string(r.Status), BizNo: r.BizInfo.BizNo, ExpectedImages: expectedImages(r)}
	if vt, ok := r.VerifyTime(); ok {
		f.VerifiedAt = &vt
	}
	if l := r.LivenessResult; l != nil {
		res := "unknown"
		switch strings.ToUpper(strings.TrimSpace(l.Result)) {
		case "PASS":
			res = "pass"
		case "FAIL":
			res = "fail"
		}
		proc, inferred := l.Procedure()
		f.Liveness = &contract.Liveness{Result: res, Procedure: proc, ProcedureInferred: inferred, Attacks: []contract.Attack{}}
		for _, at := range l.FaceGenuineness.Attacks() {
			f.Liveness.Attacks = append(f.Liveness.Attacks, contract.Attack{Kind: at.Kind, Score: at.Confidence, Threshold: at.Threshold, Suspected: at.Suspected})
		}
		if g := l.FaceGenuineness; g != nil {
			f.Liveness.SelfieInconsistent = ptrI(g.SelfieInconsistent)
			f.Liveness.SelfieMetadataInconsistent = ptrI(g.SelfieMetadataInconsistent)
		}
	}
	if v := r.VerifyResult; v != nil {
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
			f.FaceMatch = append(f.FaceMatch, fm)
		}
		add("idcard_photo", v.ResultIDCardPhoto)
		add("idcard_datasource", v.ResultIDCardDatasource)
		add("faceid", v.ResultFaceID)
		for _, n := range v.RefNumbers() {
			s := v.Refs[n]
			add("ref"+strconv.Itoa(n), &s)
		}
		if v.ErrorMessage != nil && strings.TrimSpace(*v.ErrorMessage) != "" {
			f.FaceMatch = append(f.FaceMatch, contract.FaceMatch{Source: "comparison", Error: strings.TrimSpace(*v.ErrorMessage)})
		}
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

// MaskName keeps a name's first character.
func MaskName(s string) string {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(s)
	return string(r) + strings.Repeat("*", max(n-1, 1))
}

// MaskIDNumber keeps the first three and last four characters of numbers long
// enough to stay anonymous that way.
func MaskIDNumber(s string) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) < 10 {
		return strings.Repeat("*", len(r))
	}
	return string(r[:3]) + strings.Repeat("*", len(r)-7) + string(r[len(r)-4:])
}

// buildRecord merges a verification's terminal and its responses' facts.
// Later responses' facts fill what earlier ones lacked; for Baidu, getall
// wins over detail because it lists every attempt. A Baidu flow status and
// verdict come from those answers only, never from the terminal (harvesters
// before the landing became a hint copied the browser's page there); the
// landing is carried as the hint it is.
func buildRecord(t contract.Terminal, ev Evidence, evidence contract.ObjectRef, archivedAt time.Time, mask bool) contract.Record {
	flow, landing := t.FlowStatus, ""
	if t.Vendor == contract.Baidu {
		flow = ""
		if t.Landing == "success" || t.Landing == "failure" {
			landing = t.Landing
		}
	}
	rec := contract.Record{Schema: contract.RecordSchemaVersion, Vendor: t.Vendor, VerificationID: t.VerificationID, BizNo: t.BizNo,
		Outcome: t.Outcome, Reason: t.Reason, FlowStatus: flow, Landing: landing, FaceMatch: []contract.FaceMatch{}, Attempts: []contract.Attempt{},
		Media: []contract.MediaRef{}, Problems: []string{}, Responses: []contract.ResponseIn{}, Evidence: &evidence,
		WindowLeftSeconds: t.WindowLeftSeconds,
		Times:             contract.RecordTimes{IssuedAt: utcPtr(t.IssuedAt), CompletedAt: utcPtr(t.CompletedAt), DecidedAt: t.DecidedAt.UTC(), ArchivedAt: archivedAt}}
	parts := append([]*Part(nil), ev.Responses...)
	// getall first: its attempt list is the fuller account. A Megvii
	// callback last: get_result's answer, when there is one, is the record.
	// Of several getall answers (a token polled while its user retried), the
	// latest lists the most attempts: it comes first.
	sort.SliceStable(parts, func(i, j int) bool {
		if ci, cj := parts[i].Endpoint == contract.EndpointCallback, parts[j].Endpoint == contract.EndpointCallback; ci != cj {
			return cj
		}
		gi, gj := parts[i].Endpoint == baidu.EndpointGetAll, parts[j].Endpoint == baidu.EndpointGetAll
		if gi && gj {
			return parts[i].FetchedAt.After(parts[j].FetchedAt)
		}
		return gi && !gj
	})
	var attemptsFrom *Part
	for _, p := range parts {
		if p.ErrorClass == "" && p.HTTPStatus == 200 {
			ft := p.FetchedAt
			if rec.Times.HarvestedAt == nil || ft.After(*rec.Times.HarvestedAt) {
				rec.Times.HarvestedAt = &ft
			}
		}
		f := p.Facts
		if f == nil {
			continue
		}
		if f.Problem != "" {
			rec.Problems = append(rec.Problems, f.Problem)
		}
		if rec.FlowStatus == "" {
			rec.FlowStatus = f.FlowStatus
		}
		if rec.BizNo == "" {
			rec.BizNo = f.BizNo
		}
		if rec.Passed == nil {
			rec.Passed = f.Passed
		}
		if rec.Liveness == nil && f.Liveness != nil {
			l := *f.Liveness
			rec.Liveness = &l
		} else if rec.Liveness != nil && f.Liveness != nil {
			// getall's reserved scores are left out: detail's fill them.
			if rec.Liveness.Score == nil {
				rec.Liveness.Score = f.Liveness.Score
			}
			if rec.Liveness.SpoofingScore == nil {
				rec.Liveness.SpoofingScore = f.Liveness.SpoofingScore
			}
		}
		if len(rec.FaceMatch) == 0 {
			rec.FaceMatch = append(rec.FaceMatch, f.FaceMatch...)
		}
		if rec.IDExceptions == nil && f.IDExceptions != nil {
			x := *f.IDExceptions
			rec.IDExceptions = &x
		}
		if rec.Identity == nil && f.Identity != nil {
			id := *f.Identity
			if mask {
				id.Name, id.IDNumber, id.Masked = MaskName(id.Name), MaskIDNumber(id.IDNumber), true
			}
			rec.Identity = &id
		}
		if len(rec.Attempts) == 0 && len(f.Attempts) > 0 {
			rec.Attempts = append(rec.Attempts, f.Attempts...)
			attemptsFrom = p
		}
		if rec.Billing == nil {
			rec.Billing = f.Billing
		}
	}
	type seenKey struct {
		endpoint, kind, key string
		attempt             int
	}
	seen := map[seenKey]bool{}
	for _, p := range ev.Responses { // media and responses in the harvest's order
		rec.Responses = append(rec.Responses, contract.ResponseIn{ID: p.ID, Endpoint: p.Endpoint, HTTPStatus: p.HTTPStatus, ErrorClass: p.ErrorClass})
		if p.Problem != "" {
			rec.Problems = append(rec.Problems, p.Endpoint+": "+p.Problem)
		}
		for _, m := range p.Media {
			// A polled getall lists earlier attempts' images again: the
			// same object is listed once.
			if k := (seenKey{m.Endpoint, m.Kind, m.Key, m.Attempt}); m.Key != "" {
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			rec.Media = append(rec.Media, m)
			if m.Status != contract.MediaStored {
				rec.Problems = append(rec.Problems, fmt.Sprintf("%s %s %s: %s", p.Endpoint, m.Kind, m.Status, m.Reason))
			}
		}
	}
	for _, id := range ev.Missing {
		rec.Problems = append(rec.Problems, "response "+id+" was not archived (see the dead-letter topic)")
	}
	if attemptsFrom != nil {
		for i := range rec.Attempts {
			for _, m := range attemptsFrom.Media {
				if m.Attempt == rec.Attempts[i].Order {
					rec.Attempts[i].Media = append(rec.Attempts[i].Media, m)
				}
			}
		}
	}
	if t.Vendor == contract.Megvii {
		megviiRecord(&rec, t, parts)
	}
	if t.Vendor == contract.Baidu {
		rec.MediaRecording = contract.MediaNotQueried
		for _, p := range parts {
			if p.Endpoint == baidu.EndpointMedia && p.Facts != nil && p.Facts.MediaRecorded != nil {
				if *p.Facts.MediaRecorded {
					rec.MediaRecording = contract.MediaRecorded
				} else if rec.MediaRecording != contract.MediaRecorded {
					rec.MediaRecording = contract.MediaNotRecorded
				}
			}
		}
	}
	return rec
}

// megviiRecord completes a Megvii record from the signed callback: when no
// get_result answer is usable, the record is the callback's (outcome
// harvested_without_images); when both are, a disagreement is a problem.
// Either way the images the flow produced but no answer carried are listed
// as not obtained, with the reason.
func megviiRecord(rec *contract.Record, t contract.Terminal, parts []*Part) {
	var answer, callback *Facts
	asked := map[string]bool{} // return_image values of served answers
	got := map[string]bool{}   // media kinds the answers carried
	var askedList []string
	for _, p := range parts {
		switch {
		case p.Endpoint == contract.EndpointCallback:
			if p.Facts != nil && p.Facts.Problem == "" && megvii.Status(p.Facts.FlowStatus).Final() {
				callback = p.Facts
			}
		case p.Endpoint == megvii.EndpointGetResult && p.ErrorClass == "" && p.HTTPStatus == 200:
			if answer == nil && p.Facts != nil && p.Facts.Problem == "" {
				answer = p.Facts
			}
			if v := p.Params["return_image"]; v != "" && !asked[v] {
				asked[v] = true
				askedList = append(askedList, v)
			}
			for _, m := range p.Media {
				got[m.Kind] = true
			}
		}
	}
	// The schedule's completion of a Megvii verification is the final
	// callback's receipt; the vendor's verify time, when get_result gives
	// one, is when the verification happened.
	rec.Times.CallbackReceivedAt = utcPtr(t.CompletedAt)
	if answer != nil && answer.VerifiedAt != nil {
		rec.Times.CompletedAt = utcPtr(answer.VerifiedAt)
	}
	if callback == nil && answer == nil {
		return
	}
	switch {
	case callback == nil:
		// No callback: what the answers could not be asked for is still
		// listed, from their own result.
	case answer == nil:
		if rec.Outcome != contract.OutcomeHarvested {
			why := rec.Reason
			if why == "" {
				why = rec.Outcome
			}
			rec.Outcome = contract.OutcomeHarvestedWithoutImages
			rec.Reason = "from the vendor-signed callback; get_result: " + why
		}
	default:
		rec.Problems = append(rec.Problems, megviiDisagreements(answer, callback)...)
	}
	var expected []string
	if callback != nil {
		expected = callback.ExpectedImages
	}
	if answer != nil && len(answer.ExpectedImages) > 0 {
		expected = answer.ExpectedImages
	}
	for _, kind := range expected {
		if got[kind] {
			continue
		}
		reason := "no usable get_result answer"
		if t.Reason != "" && answer == nil {
			reason += ": " + t.Reason
		}
		if len(asked) > 0 {
			reason = "not asked for: the call budget went to return_image=" + strings.Join(askedList, ",")
			for _, v := range askedList {
				if slices.Contains(megviiImageKinds(v, expected), kind) {
					reason = "asked for (return_image=" + v + ") but not in the answer"
				}
			}
		}
		rec.Media = append(rec.Media, contract.MediaRef{Kind: kind, Endpoint: megvii.EndpointGetResult, Status: contract.MediaNotObtained, Reason: reason})
	}
}

// megviiDisagreements compares get_result's answer with the signed callback.
func megviiDisagreements(answer, callback *Facts) []string {
	var out []string
	if answer.FlowStatus != callback.FlowStatus {
		out = append(out, fmt.Sprintf("get_result and the signed callback disagree: status %s, callback %s", answer.FlowStatus, callback.FlowStatus))
	}
	lr := func(f *Facts) string {
		if f.Liveness == nil {
			return "none"
		}
		return f.Liveness.Result
	}
	if lr(answer) != lr(callback) {
		out = append(out, fmt.Sprintf("get_result and the signed callback disagree: liveness %s, callback %s", lr(answer), lr(callback)))
	}
	scores := func(f *Facts) map[string]string {
		m := map[string]string{}
		for _, fm := range f.FaceMatch {
			v := fm.Error
			if fm.Score != nil {
				v = strconv.FormatFloat(*fm.Score, 'g', -1, 64)
			}
			m[fm.Source] = v
		}
		return m
	}
	a, c := scores(answer), scores(callback)
	for _, src := range sortedKeys(toAny(a, c)) {
		if a[src] != c[src] {
			out = append(out, fmt.Sprintf("get_result and the signed callback disagree: %s score %q, callback %q", src, a[src], c[src]))
		}
	}
	return out
}

func toAny(ms ...map[string]string) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k := range m {
			out[k] = nil
		}
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
