package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// The audit topic records every view of a verification's personal data:
// who looked, when, at which verification, and what was shown. It is keyed
// by viewer, so that one person's views stay in order on one partition.
const (
	DefaultAuditTopic = "faceid.audit"
	TypeAudit         = "com.faceharvest.audit.v1"
)

// Audit actions: what the viewer asked for.
const (
	AuditSearch   = "search"   // a biz_no search; Verifications lists what the answer named
	AuditRecord   = "record"   // a verification's record (identity masked)
	AuditIdentity = "identity" // a verification's unmasked identity
	AuditMedia    = "media"    // one stored image or video
	AuditEvidence = "evidence" // the evidence document (which holds the unmasked identity)
)

// Roles of the people who view evidence: a viewer sees records (identity
// masked) and media other than ID-card images (IdentityMedia); identity
// also sees the unmasked identity, the ID-card images and the evidence
// document. An operator is the operator command's user: it reads
// with the store's credentials, not with a role of the page, and is given
// links to every object of what it shows (the evidence document too).
const (
	RoleViewer   = "viewer"
	RoleIdentity = "identity"
	RoleOperator = "operator"
)

// IdentityMedia reports whether a media object of this kind (a record's
// MediaRef.Kind) is identity data: an ID-card image (Megvii's
// image_idcard_front/back and Baidu's front_image/back_image and
// front_base64/back_base64 are archived as idcard_front and idcard_back)
// shows the full name and ID number as plainly as the unmasked identity.
// Such an object is shown only to the identity role, and each view of it is
// recorded as identity_unmasked. Every path that hands out media (the
// audit page, the operator command's links) asks this one function.
func IdentityMedia(kind string) bool {
	return strings.Contains(strings.ToLower(kind), "idcard")
}

// AuditEvent is one view of personal data, written to the audit topic
// (acknowledged by every in-sync replica) before anything is shown.
type AuditEvent struct {
	// ID is unique per view (random); it is the message's ce_id, so a
	// retried write of the same view is deduplicated, and two views never
	// share one.
	ID string `json:"id"`
	// Viewer names who looked (the token's name or the proxy's user), Role
	// the role they looked with, Via the tool (auditor, faceharvest).
	Viewer string    `json:"viewer"`
	Role   string    `json:"role"`
	Via    string    `json:"via"`
	At     time.Time `json:"at"`
	Action string    `json:"action"`
	// Vendor and VerificationID name the verification viewed (empty for a
	// search); BizNo is the verification's biz_no, or the searched one when
	// the search found it.
	Vendor         Vendor `json:"vendor,omitempty"`
	VerificationID string `json:"verification_id,omitempty"`
	BizNo          string `json:"biz_no,omitempty"`
	// QuerySHA256 is the SHA-256 (hex) of a page search's text that is not
	// a biz_no the store holds (an id, which Verifications names, or text
	// that matched nothing, such as an ID number pasted into the box): the
	// text itself is not recorded. It tells two searches apart and lets a
	// suspected text be checked; a guessable text can be recovered from it
	// by trying candidates, so it hides the text from a casual reader only.
	QuerySHA256 string `json:"query_sha256,omitempty"`
	// Verifications are the keys (<vendor>:<id>) a search answer listed.
	Verifications []string `json:"verifications,omitempty"`
	// What was shown: the record, the identity unmasked, one object (media
	// or evidence) by its store key. IdentityUnmasked is also set when a
	// link to an evidence document (which holds the unmasked identity) was
	// given (LinkedKeys).
	Record           bool   `json:"record"`
	IdentityUnmasked bool   `json:"identity_unmasked"`
	ObjectKey        string `json:"object_key,omitempty"`
	MediaKind        string `json:"media_kind,omitempty"`
	// LinkedKeys are the objects the viewer was given presigned links to
	// (the operator command), usable by whoever holds them until
	// LinksExpireAt.
	LinkedKeys    []string   `json:"linked_keys,omitempty"`
	LinksExpireAt *time.Time `json:"links_expire_at,omitempty"`
	// RequestID and RemoteAddr tie the event to the request (RemoteAddr is
	// the connection's peer: the proxy's address behind a proxy).
	RequestID  string `json:"request_id,omitempty"`
	RemoteAddr string `json:"remote_addr,omitempty"`
}

// Envelope renders the event for the audit topic, keyed by viewer.
func (e AuditEvent) Envelope(source string) (Envelope, error) {
	switch {
	case e.ID == "":
		return Envelope{}, errors.New("audit event without an id")
	case e.Viewer == "":
		return Envelope{}, errors.New("audit event without a viewer")
	case e.Action == "":
		return Envelope{}, errors.New("audit event without an action")
	case e.At.IsZero():
		return Envelope{}, errors.New("audit event without a time")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{ID: e.ID, Source: source, Type: TypeAudit, Time: e.At, Key: e.Viewer, Value: b}, nil
}
