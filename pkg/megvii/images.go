package megvii

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Procedure is the liveness procedure of a result: procedure_type when the
// vendor sent it, else the procedure its details' shape shows (inferred
// true). 002's liveness_result table and its selfie and video examples carry
// no procedure_type; 000 describes each procedure's details:
//   - face_front / face_side objects (or selfie_inconsistent,
//     selfie_metadata_inconsistent in face_genuineness): selfie;
//   - UPLOAD_TIMES or a recorded video's counters (SR_ERROR,
//     NOT_SYNCHRONIZED, NO_AUDIO, INVALID_VIDEO_DURATION,
//     VIDEO_FORMAT_UNSUPPORTED, VIDEO_FACE_INCONSISTENT): an uploaded video,
//     "video" or "still" in upload mode, which the shape cannot tell apart:
//     ProcedureVideoOrStill;
//   - the real-time counters (SIDE_FACE, UPDOWN_FACE, EYE_OCCLUSION, ...):
//     "still" in webRTC mode or "flash": ProcedureStillOrFlash.
//
// "" when neither the field nor the shape tells.
func (l *LivenessResult) Procedure() (procedure string, inferred bool) {
	if l == nil {
		return "", false
	}
	if pt := strings.ToLower(strings.TrimSpace(l.ProcedureType)); pt != "" {
		return pt, false
	}
	d := l.Details
	if d.FaceFront != nil || d.FaceSide != nil {
		return ProcedureSelfie, true
	}
	if g := l.FaceGenuineness; g != nil && (g.SelfieInconsistent.Valid || g.SelfieMetadataInconsistent.Valid) {
		return ProcedureSelfie, true
	}
	for _, k := range []string{"UPLOAD_TIMES", "SR_ERROR", "NOT_SYNCHRONIZED", "NO_AUDIO", "INVALID_VIDEO_DURATION", "VIDEO_FORMAT_UNSUPPORTED", "VIDEO_FACE_INCONSISTENT"} {
		if _, ok := d.Counters[k]; ok {
			return ProcedureVideoOrStill, true
		}
	}
	for _, k := range []string{"SIDE_FACE", "UPDOWN_FACE", "EYE_OCCLUSION", "MOUTH_OCCLUSION", "AWAY_FROM_CAMERA", "CLOSE_TO_CAMERA", "FACE_OUT_OF_CAMERA", "HIGH_BRIGHTNESS", "LOW_BRIGHTNESS"} {
		if _, ok := d.Counters[k]; ok {
			return ProcedureStillOrFlash, true
		}
	}
	return "", false
}

// Procedures inferred from a result without procedure_type whose details'
// shape fits two documented procedures (see LivenessResult.Procedure).
const (
	ProcedureVideoOrStill = "video_or_still"
	ProcedureStillOrFlash = "still_or_flash"
)

// ExpectedImages are the images a finished flow produced, by the names
// get_result gives them: the selfie photos for selfie (000: return_image 5
// and 6, only for selfie), image_best for every other procedure (000:
// return_image 1, for video, still and flash), and each side of the ID card
// the user photographed (front_side, back_side in idcard_info). Images come
// only with status OK (000): nil for any other status.
func (r *Result) ExpectedImages() []string {
	if r == nil || r.Status != StatusOK || r.LivenessResult == nil {
		return nil
	}
	var out []string
	if p, _ := r.LivenessResult.Procedure(); p == ProcedureSelfie {
		out = append(out, ImageSelfieFront, ImageSelfieSide)
	} else {
		out = append(out, ImageBest)
	}
	if c := r.IDCardInfo; c != nil {
		if c.FrontSide != nil {
			out = append(out, ImageIDCardFront)
		}
		if c.BackSide != nil {
			out = append(out, ImageIDCardBack)
		}
	}
	return out
}

// ReturnImageFor is the return_image value that asks for one image alone
// (000: 1 image_best, 2 and 3 the ID card's sides, 5 and 6 the selfies);
// ReturnImageAll for a name the documents do not list.
func ReturnImageFor(name string) ReturnImage {
	switch name {
	case ImageBest:
		return ReturnImageBest
	case ImageIDCardFront:
		return ReturnImageIDCardFront
	case ImageIDCardBack:
		return ReturnImageIDCardBack
	case ImageSelfieFront:
		return ReturnImageSelfieFront
	case ImageSelfieSide:
		return ReturnImageSelfieSide
	}
	return ReturnImageAll
}

// ImagesOf are the images a return_image value asks for, of those a flow
// produced (expected): 4 (000 and 002: 需要返回所有图像, all images) every
// one of them, the others their one image.
func ImagesOf(ri ReturnImage, expected []string) []string {
	if ri == ReturnImageAll {
		return expected
	}
	for _, n := range expected {
		if ReturnImageFor(n) == ri {
			return []string{n}
		}
	}
	return nil
}

// MissingImages reads a get_result answer (a validated single pass: the
// images are not decoded) and returns the return_image values that would
// fetch the images the flow produced but the answer lacks, in the order of
// ExpectedImages; nil when the answer is not a result object.
func MissingImages(body []byte) []ReturnImage {
	var small struct {
		Status         Status          `json:"status"`
		IDCardInfo     json.RawMessage `json:"idcard_info"`
		LivenessResult json.RawMessage `json:"liveness_result"`
	}
	got := map[string]bool{}
	var ferr error
	err := members(body, func(key string, vs, ve int) {
		v := body[vs:ve]
		switch {
		case strings.EqualFold(key, "status"):
			ferr = small.Status.UnmarshalJSON(v)
		case strings.EqualFold(key, "idcard_info"):
			small.IDCardInfo = v
		case strings.EqualFold(key, "liveness_result"):
			small.LivenessResult = v
		case strings.EqualFold(key, "images") && len(v) > 0 && v[0] == '{':
			_ = members(v, func(name string, s, e int) {
				if e-s > 2 && v[s] == '"' { // a non-empty string; null or "" carries nothing
					got[strings.Clone(name)] = true
				}
			})
		}
	})
	if err != nil || ferr != nil {
		return nil
	}
	r := &Result{Status: small.Status}
	if len(small.IDCardInfo) > 0 && json.Unmarshal(small.IDCardInfo, &r.IDCardInfo) != nil {
		r.IDCardInfo = nil
	}
	if len(small.LivenessResult) > 0 && json.Unmarshal(small.LivenessResult, &r.LivenessResult) != nil {
		r.LivenessResult = nil
	}
	var out []ReturnImage
	for _, n := range r.ExpectedImages() {
		if !got[n] {
			out = append(out, ReturnImageFor(n))
		}
	}
	return out
}

// VerifyTimeKey is the top-level field read as the verify time that
// return_verify_time=1 asks for (000: 需要返回验证发生的时间). The documents
// name neither the field nor its format: the simulator's choice, read
// leniently.
const VerifyTimeKey = "verify_time"

// VerifyTime is the verification time the answer gives (VerifyTimeKey): a
// number or numeric string of Unix seconds (milliseconds when above 1e12),
// RFC 3339, or "2006-01-02 15:04:05" in China Standard Time. ok is false
// when the answer has none or it does not parse.
func (r *Result) VerifyTime() (t time.Time, ok bool) {
	if r == nil {
		return time.Time{}, false
	}
	raw, has := r.Extra[VerifyTimeKey]
	if !has {
		return time.Time{}, false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return time.Time{}, false
	}
	var n float64
	switch x := v.(type) {
	case float64:
		n = x
	case string:
		x = strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			n = f
			break
		}
		if t, err := time.Parse(time.RFC3339, x); err == nil {
			return t.UTC(), true
		}
		if t, err := time.ParseInLocation("2006-01-02 15:04:05", x, time.FixedZone("CST", 8*3600)); err == nil {
			return t.UTC(), true
		}
		return time.Time{}, false
	default:
		return time.Time{}, false
	}
	if n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return time.Time{}, false
	}
	if n > 1e12 {
		return time.UnixMilli(int64(n)).UTC(), true
	}
	sec, frac := math.Modf(n)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}
