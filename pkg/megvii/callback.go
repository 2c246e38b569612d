package megvii

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"unsafe"

	"github.com/faceharvest/faceharvest/pkg/config"
)

// Callback formats: document 000 says form-encoded, document 002 says JSON.
const (
	FormatForm = "form"
	FormatJSON = "json"
)

// Callback is a notify_url or return_url POST body.
type Callback struct {
	Data   string // the result object as a JSON string, verbatim: it is what was signed
	Sign   string // sha1(API_SECRET + data), lower-case hex
	Format string // FormatForm or FormatJSON
}

// Callback decoding errors; callers map them to HTTP statuses.
var (
	ErrUnsupportedMediaType = errors.New("unsupported content type")
	ErrMalformedCallback    = errors.New("malformed callback body")
	ErrMissingSign          = errors.New("missing sign")
	ErrBadSignature         = errors.New("signature does not match")
)

// DecodeCallback decodes a callback body: application/x-www-form-urlencoded,
// multipart/form-data is not used by the vendor and is refused, and
// application/json (also text/json). An empty content type is sniffed.
// What it returns never shares body's bytes: the caller may reuse body.
// The body is copied once: its data (unescaped) and sign, nothing else
// (callback_decode.go; fuzzed against net/url and encoding/json).
func DecodeCallback(contentType string, body []byte) (Callback, error) {
	mt := ""
	if contentType != "" {
		var err error
		mt, err = MediaType(contentType)
		if err != nil {
			return Callback{}, fmt.Errorf("%w: %q", ErrUnsupportedMediaType, contentType)
		}
	} else if bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
		mt = "application/json"
	} else {
		mt = "application/x-www-form-urlencoded"
	}
	var cb Callback
	var err error
	switch mt {
	case "application/x-www-form-urlencoded":
		cb, err = decodeFormCallback(body)
	case "application/json", "text/json":
		cb, err = decodeJSONCallback(body)
	default:
		return Callback{}, fmt.Errorf("%w: %s", ErrUnsupportedMediaType, mt)
	}
	if err != nil {
		return Callback{}, err
	}
	if cb.Data == "" {
		return Callback{}, fmt.Errorf("%w: missing data", ErrMalformedCallback)
	}
	if cb.Sign == "" {
		return Callback{}, ErrMissingSign
	}
	return cb, nil
}

// MediaType is mime.ParseMediaType's media type, without its allocations
// for the plain values callbacks carry.
func MediaType(contentType string) (string, error) {
	switch contentType {
	case "application/x-www-form-urlencoded", "application/json", "text/json":
		return contentType, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return mt, err
}

// Sign computes sha1(secret + data) as lower-case hex.
func Sign(secret, data string) string {
	var out [2 * sha1.Size]byte
	return string(signInto(&out, secret, data))
}

// signInto writes Sign's hex into out and returns it.
func signInto(out *[2 * sha1.Size]byte, secret, data string) []byte {
	h := sha1.New()
	h.Write(bytesOf(secret))
	h.Write(bytesOf(data))
	var sum [sha1.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return out[:]
}

// VerifySignature checks cb.Sign against every secret in constant time
// (rotation: several secrets are valid at once). It returns the index of the
// matching secret, or ErrBadSignature. Every secret is tried, so the time
// taken does not tell which one matched.
func VerifySignature(cb Callback, secrets []config.Secret) (int, error) {
	if cb.Sign == "" {
		return -1, ErrMissingSign
	}
	got := bytesOf(strings.ToLower(strings.TrimSpace(cb.Sign)))
	match := -1
	var want [2 * sha1.Size]byte
	for i, s := range secrets {
		if subtle.ConstantTimeCompare(got, signInto(&want, s.Reveal(), cb.Data)) == 1 && match < 0 {
			match = i
		}
	}
	if match < 0 {
		return -1, ErrBadSignature
	}
	return match, nil
}

// SecretFingerprint names a callback secret without revealing it:
// "sha256:" and the first 8 hex digits of the secret's SHA-256. It stays the
// same when secrets are reordered or added during a rotation (a position
// would not), and 32 bits of a hash tell nothing usable about a secret.
func SecretFingerprint(s config.Secret) string {
	sum := sha256.Sum256(bytesOf(s.Reveal()))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// ParseData decodes the callback's data string.
func (cb Callback) ParseData() (*Result, error) {
	r, err := ParseResult([]byte(cb.Data))
	if err != nil {
		return nil, fmt.Errorf("%w: data is not a result object", ErrMalformedCallback)
	}
	return r, nil
}

// EncodeForm and EncodeJSON build callback bodies (the simulator and tests use them).
func (cb Callback) EncodeForm() []byte {
	return []byte(url.Values{"data": {cb.Data}, "sign": {cb.Sign}}.Encode())
}

// EncodeJSON builds the JSON callback body of document 002.
func (cb Callback) EncodeJSON() []byte {
	b, _ := json.Marshal(map[string]string{"data": cb.Data, "sign": cb.Sign})
	return b
}

// Summary is what a callback's data says about the verification: enough to
// key and route it, decoded without the rest of the result.
type Summary struct {
	Status  Status `json:"status"`
	BizInfo struct {
		BizID string `json:"biz_id"`
		BizNo string `json:"biz_no"`
	} `json:"biz_info"`
}

// Summarize decodes only the status and biz_info of a callback's data (the
// whole string must still be valid JSON).
func (cb Callback) Summarize() (Summary, error) {
	s, _, err := summarizeAnswer(bytesOf(cb.Data))
	if err != nil {
		return Summary{}, fmt.Errorf("%w: data is not a result object", ErrMalformedCallback)
	}
	return s, nil
}

// bytesOf views a string's bytes without copying; the result must not be
// modified (hashes and decoders only read it).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// ProcedureType reads liveness_result's procedure from a result object (a
// callback's data or a get_result answer): procedure_type, or, when the
// field is absent (002's callbacks), what its details' shape shows
// (LivenessResult.Procedure); "" when neither tells or the body is not a
// result object. Only liveness_result is decoded: an answer's megabytes of
// images are validated by the scanner, not decoded.
func ProcedureType(body []byte) string {
	var lr []byte
	if err := members(body, func(key string, vs, ve int) {
		if strings.EqualFold(key, "liveness_result") {
			lr = body[vs:ve]
		}
	}); err != nil || lr == nil {
		return ""
	}
	var pt struct {
		ProcedureType string `json:"procedure_type"`
	}
	if json.Unmarshal(lr, &pt) != nil {
		return ""
	}
	if p := strings.ToLower(strings.TrimSpace(pt.ProcedureType)); p != "" {
		return p
	}
	var v *LivenessResult
	if json.Unmarshal(lr, &v) != nil {
		return ""
	}
	p, _ := v.Procedure()
	return p
}
