package contract

import (
	_ "embed"
	"encoding/json"
	"time"
)

// The normalized record: one per verification on the results topic, the
// same shape for both vendors. Its JSON Schema is record.v1.schema.json in
// this package (RecordSchema); a change that breaks a consumer gets a new
// version, never an edit of this one.
const (
	RecordSchemaVersion = "faceharvest.record.v1"
	TypeRecord          = "com.faceharvest.record.v1"
)

// RecordSchema is the JSON Schema (draft 2020-12) every record validates
// against.
//
//go:embed record.v1.schema.json
var RecordSchema []byte

// RecordID is the ce_id of a verification's record: the same for every
// re-publication, so consumers deduplicate on it.
func RecordID(v Vendor, id string) string { return EventID(string(v), id, "record") }

// RecordRevisionID is the ce_id of a correction of a verification's record:
// a record re-derived from its evidence (a replay from the store after a
// fix) whose bytes, of SHA-256 sha (hex), differ from the published ones.
// It differs from RecordID, so a consumer deduplicating on ce_id does not
// drop the correction, and is the same for the same content, so replaying
// twice publishes it once.
func RecordRevisionID(v Vendor, id, sha string) string {
	return EventID(string(v), id, "record", sha)
}

// Record is the normalized outcome of one verification.
type Record struct {
	Schema         string `json:"schema"`
	Vendor         Vendor `json:"vendor"`
	VerificationID string `json:"verification_id"`
	BizNo          string `json:"biz_no,omitempty"`
	// Outcome is the harvest's terminal outcome (Outcome* constants);
	// Reason says why when it is not harvested.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// FlowStatus is the vendor's flow status: Megvii's status (OK, FAILED,
	// CANCELLED, TIMEOUT, ...), Baidu's success or failure.
	FlowStatus string `json:"flow_status,omitempty"`
	// Passed is the vendor's verdict when one was harvested: Megvii liveness
	// PASS with a comparison score; Baidu any attempt passed.
	Passed *bool `json:"passed,omitempty"`
	// Landing is the Baidu landing page the user's browser opened, success
	// or failure: an untrusted hint (a user can open either), never the
	// outcome; flow_status and passed are the vendor's.
	Landing   string      `json:"landing,omitempty"`
	Liveness  *Liveness   `json:"liveness,omitempty"`
	FaceMatch []FaceMatch `json:"face_match"`
	// IDExceptions (Megvii, comparison_type 1) flags the ID number as used
	// in earlier attacks, or the reference photo as monochrome.
	IDExceptions *IDExceptions `json:"id_exceptions,omitempty"`
	Identity     *Identity     `json:"identity,omitempty"`
	Attempts     []Attempt     `json:"attempts"`
	Billing      *Billing      `json:"billing,omitempty"`
	Media        []MediaRef    `json:"media"`
	// MediaRecording (Baidu) says whether the account recorded the flow:
	// recorded (media/query gave links), not_recorded (media/query answered
	// without any: 001 says recording is off unless Baidu enables it), or
	// not_queried (media/query was not called: switched off, or its window
	// closed first, or the harvest ended before it).
	MediaRecording string       `json:"media_recording,omitempty"`
	Evidence       *ObjectRef   `json:"evidence,omitempty"`
	Problems       []string     `json:"problems"`
	Times          RecordTimes  `json:"timestamps"`
	Responses      []ResponseIn `json:"responses"`
	// WindowLeftSeconds is how much of the retention window was left at the
	// last harvest call (negative never: a call past the window is not made).
	WindowLeftSeconds float64 `json:"window_left_seconds"`
}

// Liveness is the vendor's liveness verdict and its scores.
type Liveness struct {
	Result    string `json:"result"` // pass, fail or unknown
	Procedure string `json:"procedure,omitempty"`
	// ProcedureInferred (Megvii): the result had no procedure_type (002's
	// callbacks) and Procedure is what its details' shape shows: selfie,
	// video_or_still (an uploaded video) or still_or_flash (real time).
	ProcedureInferred bool     `json:"procedure_inferred,omitempty"`
	Score             *float64 `json:"score,omitempty"`
	SpoofingScore     *float64 `json:"spoofing_score,omitempty"`
	Attacks           []Attack `json:"attacks"`
	// Megvii selfie (000): selfie_inconsistent 0 or 1, and
	// selfie_metadata_inconsistent 0, 1 or 2 (2: not JPEG), as sent.
	SelfieInconsistent         *int `json:"selfie_inconsistent,omitempty"`
	SelfieMetadataInconsistent *int `json:"selfie_metadata_inconsistent,omitempty"`
}

// IDExceptions are Megvii's identity anomalies (000's id_exceptions), as
// sent: 1 yes, 0 no.
type IDExceptions struct {
	IDAttacked        *int `json:"id_attacked,omitempty"`
	IDPhotoMonochrome *int `json:"id_photo_monochrome,omitempty"`
}

// Attack is one attack detector's score against its threshold.
type Attack struct {
	Kind      string  `json:"kind"`
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold"`
	Suspected bool    `json:"suspected"`
}

// FaceMatch is one face comparison: Megvii's thresholds by false-accept rate
// ("1e-3" ... "1e-6"), Baidu's single threshold.
type FaceMatch struct {
	Source     string             `json:"source"`
	Score      *float64           `json:"score,omitempty"`
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
	Threshold  *float64           `json:"threshold,omitempty"`
	Error      string             `json:"error,omitempty"`
}

// Identity is who was verified, masked unless the archiver is told
// otherwise; the full values are only in the evidence document.
type Identity struct {
	Name     string `json:"name,omitempty"`
	IDNumber string `json:"id_number,omitempty"`
	Masked   bool   `json:"masked"`
	Source   string `json:"source"` // confirmed (what the user typed or confirmed) or ocr
}

// Attempt is one of a Baidu token's verification attempts.
type Attempt struct {
	Order         int      `json:"order"`
	Passed        bool     `json:"passed"`
	Code          string   `json:"code,omitempty"`
	Message       string   `json:"message,omitempty"`
	VerifiedAt    string   `json:"verified_at,omitempty"`
	Charged       bool     `json:"charged"`
	ChargeType    string   `json:"charge_type,omitempty"`
	Score         *float64 `json:"score,omitempty"`
	Threshold     *float64 `json:"threshold,omitempty"`
	LivenessScore *float64 `json:"liveness_score,omitempty"`
	SpoofingScore *float64 `json:"spoofing_score,omitempty"`
	RiskLevel     string   `json:"risk_level,omitempty"`
	// The vendor's billing and risk facts of the attempt (001, getall), for
	// reconciling its bill without opening the evidence.
	RiskTag       string `json:"risk_tag,omitempty"`
	IsDemote      *bool  `json:"is_demote,omitempty"`
	VerifyLogID   string `json:"verify_log_id,omitempty"`
	ChargeTime    string `json:"charge_time,omitempty"`
	OCRCharged    *bool  `json:"ocr_charged,omitempty"`
	OCRChargeTime string `json:"ocr_charge_time,omitempty"`
	OCRCount      *int   `json:"ocr_count,omitempty"`
	// Media are this attempt's own images (its face_image and ID-card
	// images, from the getall answer the attempts come from).
	Media []MediaRef `json:"media,omitempty"`
}

// Baidu media recording, as Record.MediaRecording says it.
const (
	MediaRecorded    = "recorded"
	MediaNotRecorded = "not_recorded"
	MediaNotQueried  = "not_queried"
)

// Billing is what the vendor charged for, as it reported it.
type Billing struct {
	Billed            *bool `json:"billed,omitempty"` // Megvii: a billed comparison outcome
	VerifyCount       *int  `json:"verify_count,omitempty"`
	OCRChargeCount    *int  `json:"ocr_charge_count,omitempty"`
	MatchChargeCount  *int  `json:"match_charge_count,omitempty"`
	VerifyChargeCount *int  `json:"verify_charge_count,omitempty"`
}

// Media statuses.
const (
	MediaStored   = "stored"
	MediaExpired  = "expired"  // the link no longer worked when it was fetched
	MediaRejected = "rejected" // not what it claimed (bad base64, not an image, too large, an HTML page)
	MediaFailed   = "failed"   // could not be fetched within the tries allowed
	MediaRefused  = "refused"  // not fetched: the link, a redirect or its address is outside the archiver's media policy (an internal address, plain http)
	// MediaNotObtained: the flow produced the image (the vendor's result
	// says so) but no answer carried it: get_result gave no usable answer,
	// or the call budget did not reach the return_image value that returns
	// it. Reason says which.
	MediaNotObtained = "not_obtained"
)

// MediaRef is one image or video of the verification.
type MediaRef struct {
	Kind     string `json:"kind"` // e.g. image_best, idcard_front, face_image, process_video
	Endpoint string `json:"endpoint"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	// Attempt is the order of the Baidu attempt the item belongs to (getall
	// lists each attempt's images); 0 when it belongs to none.
	Attempt int `json:"attempt,omitempty"`
	ObjectRef
}

// ObjectRef locates a stored object.
type ObjectRef struct {
	Key         string `json:"key,omitempty"`
	SHA256      string `json:"sha256,omitempty"`
	Size        int64  `json:"size,omitempty"`
	ContentType string `json:"content_type,omitempty"`
}

// RecordTimes are the verification's moments.
type RecordTimes struct {
	IssuedAt *time.Time `json:"issued_at,omitempty"`
	// CompletedAt is the vendor's own verification time when an answer
	// gives one, else when the completion was received.
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	// CallbackReceivedAt (Megvii) is when the final signed callback was
	// received.
	CallbackReceivedAt *time.Time `json:"callback_received_at,omitempty"`
	HarvestedAt        *time.Time `json:"harvested_at,omitempty"`
	DecidedAt          time.Time  `json:"decided_at"`
	ArchivedAt         time.Time  `json:"archived_at"`
}

// ResponseIn summarizes one vendor response the record was built from.
type ResponseIn struct {
	ID         string `json:"ce_id"`
	Endpoint   string `json:"endpoint"`
	HTTPStatus int    `json:"http_status"`
	ErrorClass string `json:"error_class,omitempty"`
}

// Message renders the record in binary mode, keyed like everything else.
func (r Record) Message(source string) (Message, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return Message{}, err
	}
	return Envelope{ID: RecordID(r.Vendor, r.VerificationID), Source: source, Type: TypeRecord, Time: r.Times.ArchivedAt,
		Key: Key(r.Vendor, r.VerificationID), Value: b}.Message(), nil
}
