package baidu

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Baidu AI common error codes.
const (
	CodeUnknown            = 1
	CodeServiceUnavailable = 2
	CodeClusterLimit       = 4
	CodeNoPermission       = 6
	CodeDailyLimit         = 17
	CodeQPSLimit           = 18
	CodeTotalLimit         = 19
	CodeInvalidParam       = 100
	CodeTokenInvalid       = 110
	CodeTokenExpired       = 111
)

// TokenInvalidMessage is the faceprint answer for a verify_token that is
// unknown, unused past its 2 hours, past its 3 days, or used with another
// application's access_token.
const TokenInvalidMessage = "Token无效或者已过期"

// ClassifyCode maps a faceprint error code and message to a class.
func ClassifyCode(code int, message string) vendorerr.Class {
	if strings.Contains(message, TokenInvalidMessage) {
		return vendorerr.Destroyed
	}
	switch code {
	case CodeClusterLimit, CodeQPSLimit:
		return vendorerr.RateLimited
	case CodeDailyLimit, CodeTotalLimit, CodeNoPermission, 13, 14, 15, CodeTokenInvalid, CodeTokenExpired:
		return vendorerr.Account
	case CodeInvalidParam, 216100, 216101:
		return vendorerr.CallerBug
	case CodeUnknown, CodeServiceUnavailable:
		return vendorerr.VendorFault
	}
	// 222xxx and 223xxx are the face service's verdicts (no face, liveness
	// failed, name and number do not match, ...): the verification did not
	// succeed, so the endpoint has nothing to give.
	if code >= 222000 && code < 224000 {
		return vendorerr.NotVerified
	}
	return vendorerr.VendorFault
}

// IsTokenRefreshCode reports whether code asks for a new access_token.
func IsTokenRefreshCode(code string) bool {
	return code == strconv.Itoa(CodeTokenInvalid) || code == strconv.Itoa(CodeTokenExpired)
}

// Classify decodes a faceprint answer. It returns the envelope on success
// and a classified error otherwise; it never panics on any input.
func Classify(endpoint string, status int, body []byte) (*Envelope, *vendorerr.Error) {
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		msg := "malformed response: invalid JSON"
		if len(body) == 0 {
			msg = "empty response"
		} else if b := strings.TrimSpace(string(body)); len(b) > 0 && b[0] != '{' {
			msg = "non-JSON response (" + http.DetectContentType(body) + ")"
		}
		class := vendorerr.VendorFault
		switch status {
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			class = vendorerr.CallerBug
		case http.StatusTooManyRequests:
			class = vendorerr.RateLimited
		}
		return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: class, HTTPStatus: status, Message: msg, Body: body}
	}
	code, message := string(env.Code), env.Message
	if (code == "" || code == "0") && env.ErrorCode != "" {
		code, message = string(env.ErrorCode), env.ErrorMsg
	}
	if code == "0" {
		code = ""
	}
	if env.Success.Value && code == "" && status == http.StatusOK {
		return &env, nil
	}
	if code == "" {
		class := vendorerr.VendorFault
		if status == http.StatusNotFound {
			class = vendorerr.CallerBug
		}
		msg := "success is false without an error code"
		if !env.Success.Valid {
			msg = "answer lacks success"
		}
		if strings.Contains(message, TokenInvalidMessage) {
			class = vendorerr.Destroyed
			msg = message
		}
		return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: class, HTTPStatus: status, Message: msg, RequestID: string(env.LogID), Body: body}
	}
	n, _ := strconv.Atoi(code)
	return nil, &vendorerr.Error{Vendor: Vendor, Endpoint: endpoint, Class: ClassifyCode(n, message), HTTPStatus: status, Code: code, Message: message, RequestID: string(env.LogID), Body: body}
}
