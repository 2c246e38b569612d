// Package megvii is a client for Megvii FaceID Lite: get_result, get_token,
// and the notify_url/return_url callbacks. Every field of the vendor's
// documents is typed; the raw response bytes are kept beside the typed view,
// because the raw response is the evidence.
package megvii

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/flexjson"
)

// Status is the FaceID Lite flow status.
type Status string

// The documented statuses.
const (
	StatusNotStarted        Status = "NOT_STARTED"
	StatusProcessing        Status = "PROCESSING"
	StatusWebRTCUnsupported Status = "WEBRTC_UNSUPPORTED"
	StatusOK                Status = "OK" // the flow finished; not "passed"
	StatusFailed            Status = "FAILED"
	StatusCancelled         Status = "CANCELLED"
	StatusTimeout           Status = "TIMEOUT"
)

// Statuses lists every documented status.
var Statuses = []Status{StatusNotStarted, StatusProcessing, StatusWebRTCUnsupported, StatusOK, StatusFailed, StatusCancelled, StatusTimeout}

// Final reports whether the flow has ended: a get_result call now spends the
// call budget on a result that will not change.
func (s Status) Final() bool {
	switch s {
	case StatusOK, StatusFailed, StatusCancelled, StatusTimeout, StatusWebRTCUnsupported:
		return true
	}
	return false
}

// Known reports whether s is a documented status.
func (s Status) Known() bool { return s.Final() || s == StatusNotStarted || s == StatusProcessing }

// UnmarshalJSON normalises case and the documents' "FALED" misspelling.
func (s *Status) UnmarshalJSON(b []byte) error {
	// Every answer and callback has a status: a documented one, quoted as
	// documented, is taken without a decoder.
	if len(b) > 2 && b[0] == '"' && b[len(b)-1] == '"' {
		for _, k := range Statuses {
			if string(b[1:len(b)-1]) == string(k) {
				*s = k
				return nil
			}
		}
	}
	var v flexjson.String
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	t := strings.ToUpper(strings.TrimSpace(string(v)))
	if t == "FALED" {
		t = string(StatusFailed)
	}
	*s = Status(t)
	return nil
}

// Result is the get_result response and the callback's data object.
type Result struct {
	RequestID      string          `json:"request_id"`
	TimeUsed       flexjson.Int    `json:"time_used"`
	Status         Status          `json:"status"`
	FailReason     string          `json:"fail_reason,omitempty"` // NETWORK_ERROR, PERMISSIONS_ERROR, SUPPORT_ERROR
	BizInfo        BizInfo         `json:"biz_info"`
	IDCardInfo     *IDCardInfo     `json:"idcard_info,omitempty"`
	LivenessResult *LivenessResult `json:"liveness_result,omitempty"`
	VerifyResult   *VerifyResult   `json:"verify_result,omitempty"`
	// Images holds data URIs by name (image_best, image_idcard_front,
	// image_idcard_back, and the selfie images); null entries are omitted.
	Images Images `json:"images,omitempty"`
	// Extra holds top-level fields the documents do not name (for example the
	// verify time asked for with return_verify_time=1), verbatim.
	Extra map[string]json.RawMessage `json:"-"`
	// Raw is the response body exactly as received.
	Raw []byte `json:"-"`
}

// BizInfo identifies the verification.
type BizInfo struct {
	BizID        string          `json:"biz_id"`
	BizNo        string          `json:"biz_no"`
	BizExtraData flexjson.String `json:"biz_extra_data"`
}

// IDCardInfo is the ID-card step's outcome.
type IDCardInfo struct {
	Mode            flexjson.String         `json:"idcard_mode"`
	UneditableField string                  `json:"idcard_uneditable_field,omitempty"` // also read from the misspelled idcard_uneditable_feild
	ModeUser        flexjson.String         `json:"idcard_mode_user,omitempty"`
	Number          string                  `json:"idcard_number,omitempty"`
	Name            string                  `json:"idcard_name,omitempty"`
	ValidDate       string                  `json:"idcard_valid_date,omitempty"`
	IssuedBy        string                  `json:"idcard_issued_by,omitempty"`
	FrontSide       *IDCardSide             `json:"front_side,omitempty"`
	BackSide        *IDCardSide             `json:"back_side,omitempty"`
	OCRFrontQuality map[string]FieldQuality `json:"ocr_front_quality,omitempty"`
	OCRBackQuality  map[string]FieldQuality `json:"ocr_back_quality,omitempty"`
}

// UnmarshalJSON accepts both spellings of idcard_uneditable_field.
func (c *IDCardInfo) UnmarshalJSON(b []byte) error {
	type plain IDCardInfo
	var v struct {
		plain
		Misspelled *string `json:"idcard_uneditable_feild"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*c = IDCardInfo(v.plain)
	if c.UneditableField == "" && v.Misspelled != nil {
		c.UneditableField = *v.Misspelled
	}
	return nil
}

// IDCardSide is one side of the card.
type IDCardSide struct {
	OCRResult   *OCRResult   `json:"ocr_result,omitempty"`
	UploadTimes flexjson.Int `json:"upload_times"`
}

// OCRResult is the OCR of one side of an ID card.
type OCRResult struct {
	Address      string                    `json:"address,omitempty"`
	Birthday     *Birthday                 `json:"birthday,omitempty"`
	Gender       string                    `json:"gender,omitempty"`
	IDCardNumber string                    `json:"id_card_number,omitempty"`
	Name         string                    `json:"name,omitempty"`
	Race         string                    `json:"race,omitempty"`
	IssuedBy     string                    `json:"issued_by,omitempty"`
	ValidDate    string                    `json:"valid_date,omitempty"`
	Legality     map[string]flexjson.Float `json:"legality,omitempty"` // keys verbatim, e.g. "Temporary ID Photo " with its trailing space
}

// Birthday as OCR read it.
type Birthday struct {
	Day   flexjson.String `json:"day"`
	Month flexjson.String `json:"month"`
	Year  flexjson.String `json:"year"`
}

// FieldQuality is one OCR field's quality and logic check.
type FieldQuality struct {
	Quality flexjson.Float  `json:"quality"`
	Logic   flexjson.Int    `json:"logic"`
	Result  flexjson.String `json:"result"`
}

// Procedure types.
const (
	ProcedureVideo  = "video"
	ProcedureStill  = "still"
	ProcedureSelfie = "selfie"
	ProcedureFlash  = "flash"
)

// LivenessResult is the liveness step's outcome.
type LivenessResult struct {
	Result          string           `json:"result"` // PASS or FAIL
	ProcedureType   string           `json:"procedure_type"`
	Details         Details          `json:"details"`
	FaceGenuineness *FaceGenuineness `json:"face_genuineness,omitempty"`
}

// Details are the liveness counters. Their keys depend on the procedure:
// flat counters for video, still and flash; two nested objects face_front and
// face_side for selfie. Keys are normalised (VIDOE_ -> VIDEO_).
type Details struct {
	Counters  map[string]int64
	FaceFront map[string]int64
	FaceSide  map[string]int64
	// Other keeps entries that are neither counters nor the selfie objects.
	Other map[string]json.RawMessage
}

// NormalizeCounterKey fixes the documents' misspellings of counter names.
func NormalizeCounterKey(k string) string {
	return strings.Replace(k, "VIDOE_", "VIDEO_", 1)
}

// UnmarshalJSON reads any of the procedure-specific shapes.
func (d *Details) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*d = Details{}
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("liveness details: %w", err)
	}
	*d = Details{}
	for k, v := range m {
		switch k {
		case "face_front", "face_side":
			c, err := counters(v)
			if err != nil {
				d.other(k, v)
				continue
			}
			if k == "face_front" {
				d.FaceFront = c
			} else {
				d.FaceSide = c
			}
			continue
		}
		var n flexjson.Int
		if err := json.Unmarshal(v, &n); err != nil || !n.Valid {
			d.other(k, v)
			continue
		}
		if d.Counters == nil {
			d.Counters = map[string]int64{}
		}
		d.Counters[NormalizeCounterKey(k)] = n.Value
	}
	return nil
}

func (d *Details) other(k string, v json.RawMessage) {
	if d.Other == nil {
		d.Other = map[string]json.RawMessage{}
	}
	d.Other[k] = v
}

func counters(raw json.RawMessage) (map[string]int64, error) {
	var m map[string]flexjson.Int
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[NormalizeCounterKey(k)] = v.Value
	}
	return out, nil
}

// MarshalJSON writes the procedure's shape back.
func (d Details) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range d.Counters {
		m[k] = v
	}
	if d.FaceFront != nil {
		m["face_front"] = d.FaceFront
	}
	if d.FaceSide != nil {
		m["face_side"] = d.FaceSide
	}
	for k, v := range d.Other {
		m[k] = v
	}
	return json.Marshal(m)
}

// FaceGenuineness holds attack confidences and thresholds. A confidence above
// its threshold means that attack is suspected.
type FaceGenuineness struct {
	SyntheticFaceConfidence flexjson.Float `json:"synthetic_face_confidence"`
	SyntheticFaceThreshold  flexjson.Float `json:"synthetic_face_threshold"`
	MaskConfidence          flexjson.Float `json:"mask_confidence"`
	MaskThreshold           flexjson.Float `json:"mask_threshold"`
	ScreenReplayConfidence  flexjson.Float `json:"screen_replay_confidence"`
	ScreenReplayThreshold   flexjson.Float `json:"screen_replay_threshold"`
	// Selfie only: "0"/"1" and "0"/"1"/"2", sent as strings or numbers.
	SelfieInconsistent         flexjson.Int `json:"selfie_inconsistent"`
	SelfieMetadataInconsistent flexjson.Int `json:"selfie_metadata_inconsistent"`
}

// Attack is one attack kind's score.
type Attack struct {
	Kind       string // synthetic_face, mask, screen_replay
	Confidence float64
	Threshold  float64
	Suspected  bool
}

// Attacks lists the attack scores present, in a fixed order.
func (g *FaceGenuineness) Attacks() []Attack {
	if g == nil {
		return nil
	}
	var out []Attack
	for _, a := range []struct {
		kind string
		c, t flexjson.Float
	}{
		{"synthetic_face", g.SyntheticFaceConfidence, g.SyntheticFaceThreshold},
		{"mask", g.MaskConfidence, g.MaskThreshold},
		{"screen_replay", g.ScreenReplayConfidence, g.ScreenReplayThreshold},
	} {
		if a.c.Valid && a.t.Valid {
			out = append(out, Attack{a.kind, a.c.Value, a.t.Value, a.c.Value > a.t.Value})
		}
	}
	return out
}

// Score is a comparison score with reference thresholds keyed by false-accept
// rate ("1e-3" ... "1e-6").
type Score struct {
	Confidence flexjson.Float            `json:"confidence"`
	Thresholds map[string]flexjson.Float `json:"thresholds"`
}

// IDExceptions flags identity anomalies.
type IDExceptions struct {
	IDAttacked        flexjson.Int `json:"id_attacked"`
	IDPhotoMonochrome flexjson.Int `json:"id_photo_monochrome"`
}

// VerifyResult is the face comparison outcome. result_ref1..result_refN are
// dynamic keys, collected in Refs by their number.
type VerifyResult struct {
	ErrorMessage           *string
	ResultFaceID           *Score
	ResultIDCardPhoto      *Score
	ResultIDCardDatasource *Score
	Refs                   map[int]Score
	IDExceptions           *IDExceptions
	Other                  map[string]json.RawMessage
}

// Billed reports whether the documents say this outcome is billed: a score
// was returned, or one of the billed comparison errors.
func (v *VerifyResult) Billed() bool {
	if v == nil {
		return false
	}
	if v.ErrorMessage != nil {
		switch m := strings.TrimSpace(*v.ErrorMessage); {
		case m == "NO_SUCH_ID_NUMBER", m == "ID_NUMBER_NAME_NOT_MATCH", strings.HasPrefix(m, "IMAGE_ERROR_UNSUPPORTED_FORMAT"):
			return true
		}
	}
	// 000 §6: a comparison confidence anywhere in verify_result is billed.
	for _, s := range []*Score{v.ResultFaceID, v.ResultIDCardPhoto, v.ResultIDCardDatasource} {
		if s != nil && s.Confidence.Valid {
			return true
		}
	}
	for _, r := range v.Refs {
		if r.Confidence.Valid {
			return true
		}
	}
	return false
}

// RefNumbers returns the ref indices present, ascending.
func (v *VerifyResult) RefNumbers() []int {
	var out []int
	for k := range v.Refs {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// UnmarshalJSON reads the fixed and the dynamic keys.
func (v *VerifyResult) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("verify_result: %w", err)
	}
	*v = VerifyResult{}
	score := func(k string, raw json.RawMessage) (*Score, error) {
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return nil, nil
		}
		var s Score
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("verify_result.%s: %w", k, err)
		}
		return &s, nil
	}
	var err error
	for k, raw := range m {
		switch {
		case k == "error_message":
			var s *string
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("verify_result.error_message: %w", err)
			}
			v.ErrorMessage = s
		case k == "result_faceid":
			v.ResultFaceID, err = score(k, raw)
		case k == "result_idcard_photo":
			v.ResultIDCardPhoto, err = score(k, raw)
		case k == "result_idcard_datasource":
			v.ResultIDCardDatasource, err = score(k, raw)
		case k == "id_exceptions":
			if err := json.Unmarshal(raw, &v.IDExceptions); err != nil {
				return fmt.Errorf("verify_result.id_exceptions: %w", err)
			}
		case strings.HasPrefix(k, "result_ref"):
			n, convErr := strconv.Atoi(strings.TrimPrefix(k, "result_ref"))
			if convErr != nil || n < 1 {
				v.addOther(k, raw)
				continue
			}
			var s *Score
			if s, err = score(k, raw); err == nil && s != nil {
				if v.Refs == nil {
					v.Refs = map[int]Score{}
				}
				v.Refs[n] = *s
			}
		default:
			v.addOther(k, raw)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (v *VerifyResult) addOther(k string, raw json.RawMessage) {
	if v.Other == nil {
		v.Other = map[string]json.RawMessage{}
	}
	v.Other[k] = raw
}

// MarshalJSON writes the vendor's shape back.
func (v VerifyResult) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, raw := range v.Other {
		m[k] = raw
	}
	m["error_message"] = v.ErrorMessage
	if v.ResultFaceID != nil {
		m["result_faceid"] = v.ResultFaceID
	}
	if v.ResultIDCardPhoto != nil {
		m["result_idcard_photo"] = v.ResultIDCardPhoto
	}
	if v.ResultIDCardDatasource != nil {
		m["result_idcard_datasource"] = v.ResultIDCardDatasource
	}
	for n, s := range v.Refs {
		m["result_ref"+strconv.Itoa(n)] = s
	}
	if v.IDExceptions != nil {
		m["id_exceptions"] = v.IDExceptions
	}
	return json.Marshal(m)
}

// Image names the documents use.
const (
	ImageBest        = "image_best"
	ImageIDCardFront = "image_idcard_front"
	ImageIDCardBack  = "image_idcard_back"
	// The selfie images (return_image 5 and 6): document 000 does not name
	// their keys; these are the simulator's, and any other name is kept as
	// the vendor sends it.
	ImageSelfieFront = "image_selfie_front"
	ImageSelfieSide  = "image_selfie_side"
)

// Images maps image names to data URIs.
type Images map[string]string

// UnmarshalJSON drops null entries and rejects non-string values.
func (im *Images) UnmarshalJSON(b []byte) error {
	var m map[string]*string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("images: %w", err)
	}
	*im = nil
	for k, v := range m {
		if v == nil {
			continue
		}
		if *im == nil {
			*im = Images{}
		}
		(*im)[k] = *v
	}
	return nil
}

// Names returns the image names present, sorted.
func (im Images) Names() []string {
	out := make([]string, 0, len(im))
	for k := range im {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var knownTop = map[string]bool{"request_id": true, "time_used": true, "status": true, "fail_reason": true, "biz_info": true,
	"idcard_info": true, "liveness_result": true, "verify_result": true, "images": true, "error_message": true}

// ParseResult decodes a get_result body or a callback's data string. The
// body is kept verbatim in Raw.
func ParseResult(body []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	// The undocumented top-level fields, found by one scan without a second
	// decode (a get_result with every image runs to tens of MiB). Their raw
	// values share Raw's bytes.
	top, err := topLevel(body)
	if err != nil {
		return nil, err
	}
	for k, v := range top {
		if !knownTop[k] {
			if r.Extra == nil {
				r.Extra = map[string]json.RawMessage{}
			}
			r.Extra[k] = v
		}
	}
	r.Raw = body
	return &r, nil
}
