package contract

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Raw-topic event types.
const (
	// TypeVendorResponse: the value is a vendor's response body, byte for
	// byte; the envelope's attributes are ce_ extension headers.
	TypeVendorResponse = "com.faceharvest.vendor.response.v1"
	// TypeHarvestTerminal: the value is a Terminal document; exactly one per
	// verification (a duplicate after a crash carries the same ce_id).
	TypeHarvestTerminal = "com.faceharvest.harvest.terminal.v1"
)

// CloudEvents extension attributes of a vendor response (headers ce_<name>).
const (
	HeaderVendor     = "ce_vendor"
	HeaderVerifID    = "ce_verificationid"
	HeaderEndpoint   = "ce_endpoint"
	HeaderParams     = "ce_params" // JSON object of request parameters, without secrets
	HeaderHTTPStatus = "ce_httpstatus"
	HeaderFetchedAt  = "ce_fetchedat"
	HeaderDeadline   = "ce_deadline"
	HeaderWindowLeft = "ce_windowleftseconds"
	HeaderErrorClass = "ce_errorclass" // set when the answer was an error
	HeaderAttempt    = "ce_attempt"
	// A Megvii callback recorded as a response (EndpointCallback): its sign
	// and the fingerprint of the secret that verified it.
	HeaderSign     = "ce_sign"
	HeaderSignedBy = "ce_signedby"
	// The claim check: where the answer's bytes are kept in the object
	// store (CloudEvents' dataref extension), their length and SHA-256
	// (hex). A message with them has the bytes inline only when they are
	// small (the value is then the bytes, else empty).
	HeaderDataRef    = "ce_dataref"
	HeaderDataSize   = "ce_datasize"
	HeaderDataSHA256 = "ce_datasha256"
)

// BodyRef locates a response's bytes in the object store.
type BodyRef struct {
	Key    string
	Size   int64
	SHA256 string // hex
}

// RawBodyPrefix is where the bytes of the response with ce_id ceID are
// stored: a one-shot call's answer stored but never published is found
// from its intent, which knows the ce_id, by listing the prefix.
func RawBodyPrefix(ceID string) string { return "raw/v1/" + ceID + "/" }

// RawBodyRef returns the reference of body as the response ceID's answer:
// the key ends with the bytes' SHA-256, so an object already under it holds
// the same bytes, and a conditional write that finds it has succeeded.
func RawBodyRef(ceID string, body []byte) BodyRef {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	return BodyRef{Key: RawBodyPrefix(ceID) + "sha256-" + h, Size: int64(len(body)), SHA256: h}
}

// ErrBodyMismatch: bytes read for a reference differ from its size or
// SHA-256.
var ErrBodyMismatch = errors.New("response bytes differ from their reference")

// Check says whether b are the bytes ref names.
func (ref BodyRef) Check(b []byte) error {
	if int64(len(b)) != ref.Size {
		return fmt.Errorf("%w: %s has %d bytes, the reference says %d", ErrBodyMismatch, ref.Key, len(b), ref.Size)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != ref.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %x, the reference says %s", ErrBodyMismatch, ref.Key, sum, ref.SHA256)
	}
	return nil
}

// EndpointCallback is the endpoint of a Megvii callback recorded on the raw
// topic: its body is the callback's data string, byte for byte (what was
// signed), without images (the vendor sends none in callbacks).
const EndpointCallback = "callback"

// CallbackResponseID is the ce_id of a callback recorded as a response:
// derived from the signed data alone, so the same callback, delivered again
// or reprocessed, yields the same message.
func CallbackResponseID(v Vendor, id, data string) string {
	return EventID(string(v), id, "response", EndpointCallback, data)
}

// Terminal outcomes.
const (
	OutcomeHarvested   = "harvested"    // the vendor's result was fetched
	OutcomeExpired     = "expired"      // the window closed before a call could be made
	OutcomeNotFound    = "not_found"    // the vendor does not know the verification
	OutcomeNotVerified = "not_verified" // the user never completed a verification
	OutcomeLost        = "lost"         // the data was destroyed before it was recorded
	OutcomeFailed      = "failed"       // every try failed within the window; Reason says how
	// OutcomeHarvestedWithoutImages (records only, never a terminal): no
	// get_result answer was usable (destroyed, unusable, failed, expired),
	// and the record comes from the vendor-signed callback: liveness,
	// comparison and identity, no images. Reason says what get_result did.
	OutcomeHarvestedWithoutImages = "harvested_without_images"
)

// Response is a vendor answer with its envelope attributes.
type Response struct {
	Vendor         Vendor
	VerificationID string
	Endpoint       string
	Params         map[string]string
	HTTPStatus     int
	FetchedAt      time.Time
	Deadline       time.Time
	ErrorClass     string // "" for a success
	Attempt        int
	ContentType    string
	Body           []byte
	// Sign and SignedBy: a callback's signature and the fingerprint of the
	// secret that verified it (EndpointCallback only).
	Sign, SignedBy string
	// Ref is where Body is kept in the object store, when it is; the
	// message then carries Body inline only when Inline says so.
	Ref    *BodyRef
	Inline bool
}

// ByReference says whether the response's bytes must be read from the
// store (they are not in the message).
func (r Response) ByReference() bool { return r.Ref != nil && !r.Inline }

// WindowLeft is how much of the window remained when the answer was fetched.
func (r Response) WindowLeft() time.Duration { return r.Deadline.Sub(r.FetchedAt) }

// ResponseID is the ce_id of a response: one per verification, endpoint and
// attempt, so a re-published response keeps its id.
func ResponseID(v Vendor, id, endpoint string, attempt int) string {
	return EventID(string(v), id, "response", endpoint, strconv.Itoa(attempt))
}

// TerminalID is the ce_id of a verification's terminal envelope.
func TerminalID(v Vendor, id string) string { return EventID(string(v), id, "terminal") }

// ID is the response's ce_id.
func (r Response) ID() string {
	if r.Endpoint == EndpointCallback {
		return CallbackResponseID(r.Vendor, r.VerificationID, string(r.Body))
	}
	return ResponseID(r.Vendor, r.VerificationID, r.Endpoint, r.Attempt)
}

// Message renders the response in binary mode: with a reference, the
// value is the bytes only when Inline, else empty.
func (r Response) Message(source string) Message {
	value := r.Body
	if r.ByReference() {
		value = nil
	}
	env := Envelope{ID: r.ID(), Source: source, Type: TypeVendorResponse,
		Time: r.FetchedAt, ContentType: r.ContentType, Key: Key(r.Vendor, r.VerificationID), Value: value}
	if env.ContentType == "" {
		env.ContentType = "application/octet-stream"
	}
	m := env.Message()
	params, _ := json.Marshal(r.Params)
	m.Headers = append(m.Headers,
		Header{Key: HeaderVendor, Value: []byte(r.Vendor)},
		Header{Key: HeaderVerifID, Value: []byte(r.VerificationID)},
		Header{Key: HeaderEndpoint, Value: []byte(r.Endpoint)},
		Header{Key: HeaderParams, Value: params},
		Header{Key: HeaderHTTPStatus, Value: []byte(strconv.Itoa(r.HTTPStatus))},
		Header{Key: HeaderFetchedAt, Value: []byte(r.FetchedAt.UTC().Format(time.RFC3339Nano))},
		Header{Key: HeaderDeadline, Value: []byte(r.Deadline.UTC().Format(time.RFC3339Nano))},
		Header{Key: HeaderWindowLeft, Value: []byte(strconv.FormatFloat(r.WindowLeft().Seconds(), 'f', 3, 64))},
		Header{Key: HeaderAttempt, Value: []byte(strconv.Itoa(r.Attempt))},
	)
	if r.ErrorClass != "" {
		m.Headers = append(m.Headers, Header{Key: HeaderErrorClass, Value: []byte(r.ErrorClass)})
	}
	if r.Sign != "" {
		m.Headers = append(m.Headers, Header{Key: HeaderSign, Value: []byte(r.Sign)}, Header{Key: HeaderSignedBy, Value: []byte(r.SignedBy)})
	}
	if r.Ref != nil {
		m.Headers = append(m.Headers, Header{Key: HeaderDataRef, Value: []byte(r.Ref.Key)},
			Header{Key: HeaderDataSize, Value: []byte(strconv.FormatInt(r.Ref.Size, 10))}, Header{Key: HeaderDataSHA256, Value: []byte(r.Ref.SHA256)})
	}
	return m
}

// ParseResponse reads a response message. A message with a reference and
// an empty value leaves Body nil (ByReference): the reader fetches the
// bytes and checks them with Ref.Check; with a value, Body is the value,
// which Ref.Check must accept too. Messages without a reference (written
// before the claim check) carry the bytes inline.
func ParseResponse(m Message) (Response, error) {
	env, err := FromMessage(m)
	if err != nil {
		return Response{}, err
	}
	if env.Type != TypeVendorResponse {
		return Response{}, fmt.Errorf("type %q is not a vendor response", env.Type)
	}
	r := Response{Body: m.Value, ContentType: env.ContentType}
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	if r.Vendor, err = ParseVendor(h[HeaderVendor]); err != nil {
		return Response{}, err
	}
	r.VerificationID, r.Endpoint, r.ErrorClass = h[HeaderVerifID], h[HeaderEndpoint], h[HeaderErrorClass]
	r.Sign, r.SignedBy = h[HeaderSign], h[HeaderSignedBy]
	if r.VerificationID == "" || r.Endpoint == "" {
		return Response{}, fmt.Errorf("response lacks %s or %s", HeaderVerifID, HeaderEndpoint)
	}
	if h[HeaderParams] != "" {
		if err := json.Unmarshal([]byte(h[HeaderParams]), &r.Params); err != nil {
			return Response{}, fmt.Errorf("%s: %w", HeaderParams, err)
		}
	}
	if r.HTTPStatus, err = strconv.Atoi(h[HeaderHTTPStatus]); err != nil {
		return Response{}, fmt.Errorf("%s: %w", HeaderHTTPStatus, err)
	}
	r.Attempt, _ = strconv.Atoi(h[HeaderAttempt])
	if ref, ok := h[HeaderDataRef]; ok {
		if r.Ref, err = parseRef(ref, h[HeaderDataSize], h[HeaderDataSHA256]); err != nil {
			return Response{}, err
		}
		r.Inline = len(m.Value) > 0 || r.Ref.Size == 0
		if !r.Inline {
			r.Body = nil
		}
	}
	for name, dst := range map[string]*time.Time{HeaderFetchedAt: &r.FetchedAt, HeaderDeadline: &r.Deadline} {
		if *dst, err = time.Parse(time.RFC3339Nano, h[name]); err != nil {
			return Response{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return r, nil
}

// Terminal ends a verification's harvest.
type Terminal struct {
	Vendor         Vendor `json:"vendor"`
	VerificationID string `json:"verification_id"`
	BizNo          string `json:"biz_no,omitempty"`
	Outcome        string `json:"outcome"`
	Reason         string `json:"reason,omitempty"`
	// FlowStatus is the last flow status the vendor gave: Megvii's status
	// (signed callbacks, get_result); Baidu's success or failure from
	// getall's attempts. Never from a browser.
	FlowStatus string `json:"flow_status,omitempty"`
	// Landing is the Baidu landing page the browser opened (success or
	// failure): an untrusted hint, never the outcome.
	Landing string `json:"landing,omitempty"`
	// Responses lists the ce_ids of the responses this harvest recorded, in
	// order; each precedes the terminal on the same partition.
	Responses   []string   `json:"responses"`
	IssuedAt    *time.Time `json:"issued_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	DecidedAt   time.Time  `json:"decided_at"`
	Deadline    time.Time  `json:"deadline"`
	// WindowLeftSeconds is how much of the window remained at the last
	// recorded response (or at the decision, when there was none).
	WindowLeftSeconds float64 `json:"window_left_seconds"`
}

// Message renders the terminal envelope.
func (t Terminal) Message(source string) Message {
	b, _ := json.Marshal(t)
	return Envelope{ID: TerminalID(t.Vendor, t.VerificationID), Source: source, Type: TypeHarvestTerminal, Time: t.DecidedAt,
		Key: Key(t.Vendor, t.VerificationID), Value: b}.Message()
}

func parseRef(key, size, sum string) (*BodyRef, error) {
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s %q is not a size", HeaderDataSize, size)
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size || strings.ToLower(sum) != sum {
		return nil, fmt.Errorf("%s %q is not a lower-case hex SHA-256", HeaderDataSHA256, sum)
	}
	if key == "" {
		return nil, fmt.Errorf("%s is empty", HeaderDataRef)
	}
	return &BodyRef{Key: key, Size: n, SHA256: sum}, nil
}

// MetaEnvelope is the object-store metadata entry of a stored response's
// bytes that holds the message published for them (its headers, base64 of
// a JSON list of pairs): from the object alone the message can be
// published again (an answer stored but never published, see
// RawBodyPrefix).
const MetaEnvelope = "envelope"

// StoredMetadata returns the metadata stored with the bytes of m, a
// response message with a reference.
func StoredMetadata(m Message) map[string]string {
	pairs := make([][2]string, 0, len(m.Headers))
	for _, h := range m.Headers {
		pairs = append(pairs, [2]string{h.Key, string(h.Value)})
	}
	b, _ := json.Marshal(pairs)
	return map[string]string{MetaEnvelope: base64.StdEncoding.EncodeToString(b)}
}

// MessageFromStored rebuilds the message stored with a response's bytes
// (StoredMetadata) for key, by reference (an empty value); it must parse
// as a response whose reference is key.
func MessageFromStored(key string, meta map[string]string) (Message, error) {
	raw, err := base64.StdEncoding.DecodeString(meta[MetaEnvelope])
	if err != nil || len(raw) == 0 {
		return Message{}, fmt.Errorf("stored response %s has no %s metadata", key, MetaEnvelope)
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return Message{}, fmt.Errorf("stored response %s: %s metadata: %w", key, MetaEnvelope, err)
	}
	m := Message{}
	for _, p := range pairs {
		m.Headers = append(m.Headers, Header{Key: p[0], Value: []byte(p[1])})
	}
	r, err := ParseResponse(m)
	if err != nil {
		return Message{}, fmt.Errorf("stored response %s: %w", key, err)
	}
	if r.Ref == nil || r.Ref.Key != key {
		return Message{}, fmt.Errorf("stored response %s names another reference", key)
	}
	m.Key = []byte(Key(r.Vendor, r.VerificationID))
	return m, nil
}
