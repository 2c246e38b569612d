// Package contract is the one definition of what the components say to each
// other: topic names, message keys, CloudEvents headers, event types and
// their payloads, and the stable event ids consumers deduplicate on.
package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// Default topic names; every one is configurable.
const (
	DefaultEventsTopic  = "faceid.events"
	DefaultRawTopic     = "faceid.results.raw"
	DefaultResultsTopic = "faceid.results"
	DefaultDLQTopic     = "faceid.dlq"
)

// Vendor names a face-verification vendor.
type Vendor string

// The vendors.
const (
	Megvii Vendor = "megvii"
	Baidu  Vendor = "baidu"
)

// ParseVendor accepts the vendors' names, case-insensitively.
func ParseVendor(s string) (Vendor, error) {
	switch v := Vendor(strings.ToLower(strings.TrimSpace(s))); v {
	case Megvii, Baidu:
		return v, nil
	}
	return "", fmt.Errorf("unknown vendor %.40q: want megvii or baidu", s)
}

// Key is the Kafka key of every message about one verification:
// "<vendor>:<verification id>". All topics share it, so one verification's
// messages land on the same partition number everywhere.
func Key(v Vendor, id string) string { return string(v) + ":" + id }

// IsKey reports whether key is Key(v, id), without building it.
func IsKey(key string, v Vendor, id string) bool {
	n := len(v)
	return len(key) == n+1+len(id) && key[:n] == string(v) && key[n] == ':' && key[n+1:] == id
}

// SplitKey parses a Key.
func SplitKey(k string) (Vendor, string, error) {
	vs, id, ok := strings.Cut(k, ":")
	if !ok || id == "" {
		return "", "", fmt.Errorf("key %.60q is not <vendor>:<id>", k)
	}
	v, err := ParseVendor(vs)
	if err != nil {
		return "", "", err
	}
	return v, id, nil
}

// CloudEvents Kafka binding, binary mode.
const (
	HeaderID          = "ce_id"
	HeaderSource      = "ce_source"
	HeaderType        = "ce_type"
	HeaderTime        = "ce_time"
	HeaderSpecVersion = "ce_specversion"
	HeaderContentType = "content-type"
	SpecVersion       = "1.0"
	ContentTypeJSON   = "application/json"
	// HeaderDLQReason says why a message was dead-lettered.
	HeaderDLQReason = "faceharvest_dlq_reason"
)

// Event types on the events topic.
const (
	TypeTokenRegistered = "com.faceharvest.token.registered.v1"
	TypeMegviiCallback  = "com.faceharvest.megvii.callback.v1"
	TypeBaiduCompletion = "com.faceharvest.baidu.completion.v1"
)

// Event is the payload of every events-topic message.
type Event struct {
	Vendor         Vendor `json:"vendor"`
	VerificationID string `json:"verification_id"` // Megvii biz_id, Baidu verify_token
	BizNo          string `json:"biz_no,omitempty"`
	// IssuedAt is when the vendor issued the token (token registrations).
	IssuedAt *time.Time `json:"issued_at,omitempty"`
	// ReceivedAt is when ingest received what produced the event.
	ReceivedAt time.Time `json:"received_at"`
	// Status: the Megvii flow status of a callback; "success" or "failure"
	// for a Baidu completion.
	Status string `json:"status,omitempty"`
	// Data is a Megvii callback's data string, verbatim (it is what was
	// signed). In JSON it is a string, or the object itself when written by
	// AppendJSONDataObject; UnmarshalJSON reads both to the same bytes.
	Data string `json:"data,omitempty"`
	// Sign is a Megvii callback's sign, as received: sha1(API_SECRET + data)
	// in lower-case hex. SignedBy names the secret that verified it by a
	// fingerprint (megvii.SecretFingerprint), never the secret itself.
	Sign     string            `json:"sign,omitempty"`
	SignedBy string            `json:"signed_by,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Caller names the API caller whose bearer token registered the token
	// (token registrations) or to whom the signed landing URL was given
	// (Baidu landings): a hash of the token, never the token. The first
	// registration's caller owns the verification; the harvester ignores
	// another caller's registrations and landings.
	Caller string `json:"caller,omitempty"`
}

// Envelope is one message with its CloudEvents attributes.
type Envelope struct {
	ID          string
	Source      string
	Type        string
	Time        time.Time
	ContentType string
	Key         string
	Value       []byte
}

var separator = []byte{0} // between EventID's parts; never written

// EventID derives a stable ce_id from the parts that identify an event, so
// that reprocessing or a vendor's retry yields the same id.
func EventID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(unsafe.Slice(unsafe.StringData(p), len(p))) // read only: no copy of large callback data
		h.Write(separator)
	}
	var sum [sha256.Size]byte
	var id [32]byte
	hex.Encode(id[:], h.Sum(sum[:0])[:16])
	return string(id[:])
}

// Message renders the envelope as a Kafka message in binary mode. The key
// and header values share one buffer (ingest renders one per request).
func (e Envelope) Message() Message {
	ct := e.ContentType
	if ct == "" {
		ct = ContentTypeJSON
	}
	buf := make([]byte, 0, len(e.Key)+len(e.ID)+len(e.Source)+len(e.Type)+len(time.RFC3339Nano)+len(SpecVersion)+len(ct))
	part := func(s string) []byte {
		buf = append(buf, s...)
		return buf[len(buf)-len(s) : len(buf) : len(buf)]
	}
	key, id, src, typ := part(e.Key), part(e.ID), part(e.Source), part(e.Type)
	n := len(buf)
	buf = e.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
	at := buf[n:len(buf):len(buf)]
	return Message{
		Key:   key,
		Value: e.Value,
		Headers: []Header{
			{Key: HeaderID, Value: id},
			{Key: HeaderSource, Value: src},
			{Key: HeaderType, Value: typ},
			{Key: HeaderTime, Value: at},
			{Key: HeaderSpecVersion, Value: part(SpecVersion)},
			{Key: HeaderContentType, Value: part(ct)},
		},
	}
}

// ErrNotCloudEvent is returned by FromMessage for messages lacking required
// CloudEvents headers.
var ErrNotCloudEvent = errors.New("not a CloudEvents message")

// FromMessage reads the envelope of a Kafka message.
func FromMessage(m Message) (Envelope, error) {
	e := Envelope{Key: string(m.Key), Value: m.Value}
	var t, spec string
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderID:
			e.ID = string(h.Value)
		case HeaderSource:
			e.Source = string(h.Value)
		case HeaderType:
			e.Type = string(h.Value)
		case HeaderTime:
			t = string(h.Value)
		case HeaderSpecVersion:
			spec = string(h.Value)
		case HeaderContentType:
			e.ContentType = string(h.Value)
		}
	}
	for name, v := range map[string]string{HeaderID: e.ID, HeaderSource: e.Source, HeaderType: e.Type, HeaderSpecVersion: spec} {
		if v == "" {
			return e, fmt.Errorf("%w: missing %s", ErrNotCloudEvent, name)
		}
	}
	if spec != SpecVersion {
		return e, fmt.Errorf("%w: specversion %.10q", ErrNotCloudEvent, spec)
	}
	if t != "" {
		pt, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return e, fmt.Errorf("%w: ce_time %.40q", ErrNotCloudEvent, t)
		}
		e.Time = pt
	}
	return e, nil
}
