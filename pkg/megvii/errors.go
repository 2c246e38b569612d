package megvii

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Vendor is the vendor name used in keys, errors and metric labels.
const Vendor = "megvii"

// Error messages from the documents' error tables.
const (
	ErrResultNotFound           = "RESULT_NOT_FOUND"
	ErrDataDestroyed            = "DATA_DESTROYED"
	ErrAuthentication           = "AUTHENTICATION_ERROR"
	ErrAuthorization            = "AUTHORIZATION_ERROR"
	ErrConcurrencyLimitExceeded = "CONCURRENCY_LIMIT_EXCEEDED"
	ErrMissingArguments         = "MISSING_ARGUMENTS"
	ErrBadArguments             = "BAD_ARGUMENTS"
	ErrAPINotFound              = "API_NOT_FOUND"
	ErrInternal                 = "INTERNAL_ERROR"
)

var classByCode = map[string]vendorerr.Class{
	ErrResultNotFound:           vendorerr.NotFound,
	ErrDataDestroyed:            vendorerr.Destroyed,
	ErrAuthentication:           vendorerr.Account,
	ErrAuthorization:            vendorerr.Account,
	ErrConcurrencyLimitExceeded: vendorerr.RateLimited,
	ErrMissingArguments:         vendorerr.CallerBug,
	ErrBadArguments:             vendorerr.CallerBug,
	ErrAPINotFound:              vendorerr.CallerBug,
	ErrInternal:                 vendorerr.VendorFault,
}

// errorBody is the documented error shape.
type errorBody struct {
	ErrorMessage string `json:"error_message"`
	RequestID    string `json:"request_id"`
}

// Classify turns an HTTP answer into nil (a success body) or a classified
// error. It never panics on any input.
func Classify(endpoint string, status int, body []byte) *vendorerr.Error {
	var eb errorBody
	jsonErr := json.Unmarshal(body, &eb)
	if jsonErr == nil && eb.ErrorMessage != "" {
		msg := strings.TrimSpace(eb.ErrorMessage)
		code := msg
		if i := strings.IndexByte(code, ':'); i >= 0 {
			code = strings.TrimSpace(code[:i])
		}
		class, ok := classByCode[code]
		if !ok {
			class = statusClass(status)
		}
		return &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: class, HTTPStatus: status, Code: code, Message: msg, RequestID: eb.RequestID, Body: body}
	}
	if status == http.StatusOK {
		if jsonErr != nil {
			return &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: vendorerr.VendorFault, HTTPStatus: status, Message: "malformed response: " + jsonErrText(jsonErr), Body: body}
		}
		return nil
	}
	msg := "unexpected response"
	if jsonErr != nil {
		msg = "non-JSON response (" + sniff(body) + ")"
	}
	return &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: statusClass(status), HTTPStatus: status, Message: msg, Body: body}
}

// statusClass classifies an answer that carries no documented error message.
func statusClass(status int) vendorerr.Class {
	switch {
	case status == http.StatusTooManyRequests:
		return vendorerr.RateLimited
	case status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		return vendorerr.CallerBug
	case status == http.StatusUnauthorized:
		return vendorerr.Account
	default:
		return vendorerr.VendorFault
	}
}

func jsonErrText(err error) string {
	if se, ok := err.(*json.SyntaxError); ok {
		return "invalid JSON at offset " + itoa(se.Offset)
	}
	if err.Error() == "unexpected end of JSON input" {
		return "truncated JSON"
	}
	return "invalid JSON"
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// sniff names what a non-JSON body looks like, without echoing it.
func sniff(body []byte) string {
	if len(body) == 0 {
		return "empty body"
	}
	ct := http.DetectContentType(body)
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return ct
}
