// Package baidu is a client for Baidu AI H5 faceprint (人脸实名认证): the
// access-token grant, the eight faceprint endpoints, and their error codes.
// Typed results keep the raw body beside them: the raw response is the
// evidence.
package baidu

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/flexjson"
)

// Vendor is the vendor name used in keys, errors and metric labels.
const Vendor = "baidu"

// Endpoint paths under /rpc/2.0/brain/solution/faceprint/.
const (
	EndpointGenerate    = "verifyToken/generate"
	EndpointSubmit      = "idcard/submit"
	EndpointUploadMatch = "uploadMatchImage"
	EndpointSimple      = "result/simple"
	EndpointDetail      = "result/detail"
	EndpointStat        = "result/stat"
	EndpointMedia       = "result/media/query"
	EndpointGetAll      = "result/getall"
	EndpointToken       = "oauth/token" // the access-token grant, for errors and metrics
)

// Endpoints lists the eight faceprint endpoints.
var Endpoints = []string{EndpointGenerate, EndpointSubmit, EndpointUploadMatch, EndpointSimple, EndpointDetail, EndpointStat, EndpointMedia, EndpointGetAll}

// Envelope is the shape every faceprint answer shares. Failures carry
// code/message; other Baidu AI APIs use error_code/error_msg, also read.
type Envelope struct {
	Success   flexjson.Bool   `json:"success"`
	Result    json.RawMessage `json:"result"`
	LogID     flexjson.String `json:"log_id"`
	Code      flexjson.String `json:"code"`
	Message   string          `json:"message"`
	ErrorCode flexjson.String `json:"error_code"`
	ErrorMsg  string          `json:"error_msg"`
}

// Meta is what every typed answer carries besides its result.
type Meta struct {
	HTTPStatus int
	LogID      string
	Raw        []byte // the response body exactly as received
}

// VerifyToken is verifyToken/generate's result.
type VerifyToken struct {
	VerifyToken string `json:"verify_token"`
	Meta        `json:"-"`
}

// SimpleResult is result/simple's result: a URL of the final face image.
type SimpleResult struct {
	Image string `json:"image"`
	Meta  `json:"-"`
}

// DetailResult is result/detail's result (successful verifications only).
type DetailResult struct {
	VerifyResult    DetailScores   `json:"verify_result"`
	IDCardOCRResult *OCRResult     `json:"idcard_ocr_result,omitempty"`
	IDCardImages    *Base64Images  `json:"idcard_images,omitempty"`
	IDCardConfirm   *IDCardConfirm `json:"idcard_confirm,omitempty"`
	IsDemote        flexjson.Bool  `json:"is_demote"`
	Meta            `json:"-"`
}

// DetailScores are the verification scores.
type DetailScores struct {
	Score         flexjson.Float `json:"score"`
	LivenessScore flexjson.Float `json:"liveness_score"`
	Spoofing      flexjson.Float `json:"spoofing"`
}

// Base64Images are ID-card images as plain base64 (no data: prefix).
type Base64Images struct {
	FrontBase64 string `json:"front_base64,omitempty"`
	BackBase64  string `json:"back_base64,omitempty"`
}

// OCRResult is the ID card as OCR read it. result/detail spells the number
// id_card_number, result/getall idcard_number; both are read into
// IDCardNumber.
type OCRResult struct {
	Address        string          `json:"address,omitempty"`
	Birthday       string          `json:"birthday,omitempty"`
	Name           string          `json:"name,omitempty"`
	IDCardNumber   string          `json:"idcard_number,omitempty"`
	IDCardType     flexjson.String `json:"idcard_type,omitempty"`
	Gender         string          `json:"gender,omitempty"`
	Nation         string          `json:"nation,omitempty"`
	IssueTime      string          `json:"issue_time,omitempty"`
	ExpireTime     string          `json:"expire_time,omitempty"`
	IssueAuthority string          `json:"issue_authority,omitempty"`
}

// UnmarshalJSON reads both spellings of the ID number.
func (o *OCRResult) UnmarshalJSON(b []byte) error {
	type plain OCRResult
	var v struct {
		plain
		Alt string `json:"id_card_number"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*o = OCRResult(v.plain)
	if o.IDCardNumber == "" {
		o.IDCardNumber = v.Alt
	}
	return nil
}

// IDCardConfirm is the identity the user typed or confirmed.
type IDCardConfirm struct {
	Name         string          `json:"name"`
	IDCardNumber string          `json:"idcard_number"`
	IDCardType   flexjson.String `json:"idcard_type,omitempty"`
}

// StatEntry is one error code's request count.
type StatEntry struct {
	ErrorCode flexjson.String `json:"error_code"`
	Count     flexjson.Int    `json:"count"`
}

// StatResult is result/stat's result: per-API arrays (Verify_FIN,
// Sessioncode, OCR, verify, VideoLiveness, Livenesscolorful, VerifySec, and
// any other the vendor adds).
type StatResult struct {
	APIs map[string][]StatEntry
	Meta
}

// MediaResult is result/media/query's result. URLs are kept for one day.
type MediaResult struct {
	ProcessVideo []string        `json:"processVideo"`
	Video        []string        `json:"video"`
	Images       []string        `json:"images"`
	ExtInfo      json.RawMessage `json:"extInfo,omitempty"`
	Meta         `json:"-"`
}

// MediaKind names a media URL's origin.
type MediaKind string

// Media kinds.
const (
	MediaProcessVideo MediaKind = "process_video"
	MediaVideo        MediaKind = "video"
	MediaImage        MediaKind = "image"
)

// MediaURL is one URL with its kind and position.
type MediaURL struct {
	Kind  MediaKind
	Index int
	URL   string
}

// URLs lists every non-empty media URL in a fixed order.
func (m *MediaResult) URLs() []MediaURL {
	var out []MediaURL
	add := func(k MediaKind, l []string) {
		for i, u := range l {
			if strings.TrimSpace(u) != "" {
				out = append(out, MediaURL{k, i, u})
			}
		}
	}
	add(MediaProcessVideo, m.ProcessVideo)
	add(MediaVideo, m.Video)
	add(MediaImage, m.Images)
	return out
}

// GetAllResult is result/getall's result: every attempt and the charges.
type GetAllResult struct {
	VerifyCount       flexjson.Int `json:"verify_count"`
	OCRChargeCount    flexjson.Int `json:"ocr_charge_count"`
	MatchChargeCount  flexjson.Int `json:"match_charge_count"`
	VerifyChargeCount flexjson.Int `json:"verify_charge_count"`
	VerifyResult      []Attempt    `json:"verify_result"`
	Meta              `json:"-"`
}

// Passed reports whether any attempt passed.
func (g *GetAllResult) Passed() bool {
	for _, a := range g.VerifyResult {
		if a.IsVerifyPassed.Value {
			return true
		}
	}
	return false
}

// Attempt is one verification attempt of a token.
type Attempt struct {
	Order           flexjson.Int    `json:"order"`
	IsVerifyPassed  flexjson.Bool   `json:"is_verify_passed"`
	Code            flexjson.String `json:"code"`
	Message         string          `json:"message"`
	VerifyTime      string          `json:"verify_time"`
	IsCharged       flexjson.Bool   `json:"is_charged"`
	ChargeType      string          `json:"charge_type"` // verify or match
	ChargeTime      string          `json:"charge_time"`
	IsOCRCharge     flexjson.Bool   `json:"is_ocr_charge"`
	OCRChargeTime   string          `json:"ocr_charge_time,omitempty"`
	OCRCount        flexjson.Int    `json:"ocr_count"`
	VerifyDetail    VerifyDetail    `json:"verify_detail"`
	IDCardConfirm   *IDCardConfirm  `json:"idcard_confirm,omitempty"`
	IDCardOCRResult *OCRResult      `json:"idcard_ocr_result,omitempty"`
	IDCardImages    *ImageURLs      `json:"idcard_images,omitempty"`
}

// UnmarshalJSON reads idcard_ocr_result and idcard_images either beside
// idcard_confirm (as the field table says) or inside it (as the document's
// example has them).
func (a *Attempt) UnmarshalJSON(b []byte) error {
	type plain Attempt
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var nested struct {
		Confirm *struct {
			IDCardOCRResult *OCRResult `json:"idcard_ocr_result"`
			IDCardImages    *ImageURLs `json:"idcard_images"`
		} `json:"idcard_confirm"`
	}
	if err := json.Unmarshal(b, &nested); err != nil {
		return err
	}
	*a = Attempt(v)
	if c := nested.Confirm; c != nil {
		if a.IDCardOCRResult == nil {
			a.IDCardOCRResult = c.IDCardOCRResult
		}
		if a.IDCardImages == nil {
			a.IDCardImages = c.IDCardImages
		}
	}
	return nil
}

// VerifyDetail holds an attempt's scores and face image URL.
type VerifyDetail struct {
	FaceImage     string          `json:"face_image"`
	VerifyLogID   flexjson.String `json:"verify_log_id"`
	Score         flexjson.Float  `json:"score"` // empty when the name did not match or liveness failed
	Threshold     flexjson.Float  `json:"threshold"`
	LivenessScore flexjson.Float  `json:"liveness_score"`
	SpoofingScore flexjson.Float  `json:"spoofing_score"`
	RiskLevel     flexjson.String `json:"risk_level"` // 1 or 2: risk; 3 or 4: none
	RiskTag       string          `json:"risk_tag"`
	IsDemote      flexjson.Bool   `json:"is_demote"`
}

// ImageURLs are ID-card image download URLs.
type ImageURLs struct {
	FrontImage string `json:"front_image,omitempty"`
	BackImage  string `json:"back_image,omitempty"`
}

// China is the zone of the vendor's timestamps (UTC+8, no daylight saving).
var China = time.FixedZone("CST", 8*3600)

// ParseTime reads the vendor's "2023-6-20 18:00:00" timestamps (month, day
// and hour with or without a leading zero) in China time.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-1-2 15:04:05", "2006-1-2 15:04", "2006-1-2"} {
		if t, err := time.ParseInLocation(layout, s, China); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("baidu: unrecognised time %.40q", s)
}
