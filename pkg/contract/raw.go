package contract

import (
	"encoding/json"
	"fmt"
	"strconv"
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
)

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
}

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

// Message renders the response in binary mode.
func (r Response) Message(source string) Message {
	env := Envelope{ID: r.ID(), Source: source, Type: TypeVendorResponse,
		Time: r.FetchedAt, ContentType: r.ContentType, Key: Key(r.Vendor, r.VerificationID), Value: r.Body}
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
	return m
}

// ParseResponse reads a response message.
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
