package vendorsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// megviiResult builds a result object from the document's success example;
// now is the verify time it reports when asked (verifyTime).
func (s *Sim) megviiResult(bizID string, spec MegviiSpec, status megvii.Status, now time.Time, ri megvii.ReturnImage, verifyTime, truncate, withImages bool) []byte {
	name := "megvii_get_result_ok_000.json"
	if *spec.Quirks {
		name = "megvii_get_result_ok_002.json"
	}
	var m map[string]any
	_ = json.Unmarshal(vendordocs.MustExample(name), &m)
	m["request_id"] = s.requestID()
	m["time_used"] = 90 + len(bizID)%20
	m["status"] = string(status)
	m["biz_info"] = map[string]any{"biz_id": bizID, "biz_no": spec.BizNo, "biz_extra_data": spec.BizExtraData}
	if verifyTime {
		m["verify_time"] = float64(now.Unix())
	}
	if !megviiTrimForStatus(m, status, &spec) {
		return mustJSON(m)
	}
	megviiIDCardInfo(m, spec)
	megviiLiveness(m, spec, withImages)
	if vr, ok := m["verify_result"].(map[string]any); ok {
		vr["error_message"] = nil
		if spec.ComparisonError != "" {
			m["verify_result"] = map[string]any{"error_message": spec.ComparisonError}
		}
	}
	delete(m, "images")
	out := mustJSON(m)
	if withImages && status == megvii.StatusOK && ri != megvii.ReturnImageNone {
		out = s.appendMegviiImages(out, bizID, spec, ri, truncate)
	}
	return out
}

// megviiTrimForStatus removes what a result of status does not carry. It
// reports false when nothing more belongs in it (not started, processing);
// a failed liveness sets spec's Liveness to FAIL.
func megviiTrimForStatus(m map[string]any, status megvii.Status, spec *MegviiSpec) bool {
	switch status {
	case megvii.StatusNotStarted, megvii.StatusProcessing:
		delete(m, "idcard_info")
		delete(m, "liveness_result")
		delete(m, "verify_result")
		delete(m, "images")
		return false
	case megvii.StatusCancelled, megvii.StatusTimeout, megvii.StatusWebRTCUnsupported:
		// An interrupted flow (document 000: 如果用户中途中断了活体流程, 则此字段
		// 也不返回) has no idcard_info, liveness_result or verify_result.
		delete(m, "liveness_result")
		delete(m, "verify_result")
		delete(m, "idcard_info")
		if status == megvii.StatusWebRTCUnsupported && spec.GetFailReason {
			m["fail_reason"] = spec.FailReason
		}
	case megvii.StatusFailed:
		delete(m, "verify_result")
		spec.Liveness = "FAIL"
	}
	return true
}

// megviiIDCardInfo fills idcard_info from spec (or removes it for
// idcard_mode 0).
func megviiIDCardInfo(m map[string]any, spec MegviiSpec) {
	if *spec.IDCardMode == 0 {
		delete(m, "idcard_info")
	}
	ii, ok := m["idcard_info"].(map[string]any)
	if !ok {
		return
	}
	// 000: idcard_mode and idcard_uneditable_field are the ones chosen
	// at get_token (the template's own spelling of the latter kept);
	// idcard_mode_user comes only with idcard_mode 4 (the simulated
	// user picks 0, photographing the portrait side).
	ii["idcard_mode"] = strconv.Itoa(*spec.IDCardMode)
	if spec.IDCardUneditableField != "" {
		for _, k := range []string{"idcard_uneditable_field", "idcard_uneditable_feild"} {
			if _, ok := ii[k]; ok {
				ii[k] = spec.IDCardUneditableField
			}
		}
	}
	if *spec.IDCardMode == 4 {
		ii["idcard_mode_user"] = "0"
	}
}

// megviiLiveness fills liveness_result from spec.
func megviiLiveness(m map[string]any, spec MegviiSpec, withImages bool) {
	lr, ok := m["liveness_result"].(map[string]any)
	if !ok {
		return
	}
	lr["result"] = spec.Liveness
	lr["procedure_type"] = spec.Procedure
	if !withImages && *spec.Quirks {
		// 002's liveness_result table and its selfie and video
		// examples carry no procedure_type: its callbacks leave it
		// out (get_result keeps it, as 002's success example).
		delete(lr, "procedure_type")
	}
	fg := lr["face_genuineness"].(map[string]any)
	switch spec.Procedure {
	case megvii.ProcedureSelfie:
		var sel map[string]any
		_ = json.Unmarshal(vendordocs.MustExample("megvii_liveness_selfie_002.json"), &sel)
		lr["details"] = sel["details"]
		lr["face_genuineness"] = sel["face_genuineness"]
	case megvii.ProcedureStill, megvii.ProcedureFlash:
		lr["details"] = map[string]any{"FACE_NOT_FOUND": 1, "SIDE_FACE": 0, "UPDOWN_FACE": 0, "EYE_OCCLUSION": 0, "MOUTH_OCCLUSION": 0,
			"AWAY_FROM_CAMERA": 1, "CLOSE_TO_CAMERA": 0, "FACE_OUT_OF_CAMERA": 0, "HIGH_BRIGHTNESS": 0, "LOW_BRIGHTNESS": 2, "LOW_FACE_QUALITY": 0}
	}
	if spec.Liveness == "PASS" {
		fg["synthetic_face_confidence"] = 0.12
	}
}

// appendMegviiImages splices the images asked for into the result object
// out by hand: base64 and the data URI prefix need no JSON escaping, and
// encoding/json would scan every byte of them (the simulator shares the
// CPU with the pipeline it feeds in benchmarks).
func (s *Sim) appendMegviiImages(out []byte, bizID string, spec MegviiSpec, ri megvii.ReturnImage, truncate bool) []byte {
	out = append(out[:len(out)-1], `,"images":{`...)
	for i, img := range s.megviiImages(bizID, spec, ri, truncate) {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `"`+img[0]+`":"`+img[1]+`"`...)
	}
	return append(out, "}}"...)
}

// megviiImages returns the images asked for as name and data URI pairs.
func (s *Sim) megviiImages(bizID string, spec MegviiSpec, ri megvii.ReturnImage, truncate bool) [][2]string {
	selfie := spec.Procedure == megvii.ProcedureSelfie
	idcard := *spec.IDCardMode != 0
	var names []string
	// 4 (000 and 002: 需要返回所有图像) returns every image the flow
	// produced, the selfies included; 1 only for video, still and flash, 5
	// and 6 only for selfie.
	want := func(r megvii.ReturnImage) bool {
		if ri == megvii.ReturnImageAll && spec.AllWithoutSelfies {
			return r <= megvii.ReturnImageIDCardBack
		}
		return ri == r || ri == megvii.ReturnImageAll
	}
	if want(megvii.ReturnImageBest) && !selfie {
		names = append(names, megvii.ImageBest)
	}
	if want(megvii.ReturnImageIDCardFront) && idcard {
		names = append(names, megvii.ImageIDCardFront)
	}
	if want(megvii.ReturnImageIDCardBack) && idcard {
		names = append(names, megvii.ImageIDCardBack)
	}
	if want(megvii.ReturnImageSelfieFront) && selfie {
		names = append(names, megvii.ImageSelfieFront)
	}
	if want(megvii.ReturnImageSelfieSide) && selfie {
		names = append(names, megvii.ImageSelfieSide)
	}
	prefix := "data:image/jpeg;base64,"
	if *spec.Quirks {
		prefix = "data: image/jpeg;base64,"
	}
	if spec.PlainImages {
		prefix = ""
	}
	var out [][2]string
	for _, n := range names {
		b64 := base64.StdEncoding.EncodeToString(makeJPEG(s.jpegBase, bizID+"/"+n, spec.ImageBytes))
		if truncate {
			b64 = b64[:len(b64)-3]
		}
		out = append(out, [2]string{n, prefix + b64})
	}
	return out
}

func mustJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}
