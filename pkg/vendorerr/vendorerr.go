// Package vendorerr classifies every way a vendor call can fail into a small
// set of classes that callers switch on: what is terminal for the
// verification, what pauses a vendor, what is retried.
package vendorerr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
)

// Class is what a failed vendor call means for the caller.
type Class int

const (
	// Unknown is never produced by the clients; it is the zero value.
	Unknown Class = iota
	// NotFound: the vendor does not know the verification. Terminal.
	NotFound
	// Destroyed: the data existed but is gone (retention passed, call budget
	// spent, token invalid or expired). Terminal: the evidence is lost.
	Destroyed
	// NotVerified: the vendor answered that the verification did not succeed
	// and has no result for this endpoint. Terminal for that endpoint.
	NotVerified
	// Account: credentials rejected, key disabled, quota or daily limit
	// reached. A configuration or contract fault: pause the vendor and alert;
	// it says nothing about the verification.
	Account
	// RateLimited: concurrency or QPS limit. Back off and retry.
	RateLimited
	// CallerBug: missing or bad arguments, wrong URL. A bug or a
	// misconfiguration on our side.
	CallerBug
	// VendorFault: a vendor-side or transport failure (5xx, reset, timeout,
	// malformed or truncated body, HTML error page). Retry with back-off.
	VendorFault
)

var classNames = [...]string{"unknown", "not_found", "destroyed", "not_verified", "account", "rate_limited", "caller_bug", "vendor_fault"}

// String returns a stable lower-case name, fit for a metric label.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Terminal reports whether the class ends the verification (or endpoint).
func (c Class) Terminal() bool { return c == NotFound || c == Destroyed || c == NotVerified }

// Retryable reports whether the same call may succeed later.
func (c Class) Retryable() bool { return c == RateLimited || c == VendorFault }

// Error is a classified vendor failure. It never carries secrets: request URLs
// are not kept, and the message is the vendor's error code and text.
type Error struct {
	Vendor     string // "megvii" or "baidu"
	Endpoint   string // e.g. "get_result", "result/getall"
	Class      Class
	HTTPStatus int    // 0 when no response was received
	Code       string // the vendor's error code or error_message
	Message    string // the vendor's human text, or what went wrong locally
	RequestID  string // request_id or log_id, when the vendor sent one
	Body       []byte // the raw response body, when there was one: evidence
	Err        error  // an underlying transport or decoding error, secret-free
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Vendor, e.Endpoint, e.Class)
	if e.HTTPStatus != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.HTTPStatus)
		if e.Code != "" {
			s += " " + e.Code
		}
		s += ")"
	} else if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Message != "" && e.Message != e.Code {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err, Unknown for nil or unclassified errors.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Unknown
}

// Transport classifies an error from an HTTP round trip (no response) as a
// VendorFault, stripping the request URL so that secrets carried in query
// strings never reach an error message. A cancelled caller context is
// returned as the context's error wrapped in the Error.
func Transport(vendor, endpoint string, err error) *Error {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	msg := "transport error"
	switch {
	case errors.Is(inner, context.Canceled):
		msg = "cancelled"
	case errors.Is(inner, context.DeadlineExceeded) || isTimeout(inner):
		msg = "timeout"
	case errors.Is(inner, syscall.ECONNRESET) || errors.Is(inner, syscall.EPIPE):
		msg = "connection reset"
	case errors.Is(inner, syscall.ECONNREFUSED):
		msg = "connection refused"
	}
	return &Error{Vendor: vendor, Endpoint: endpoint, Class: VendorFault, Message: msg, Err: scrub(inner)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scrub keeps an error's identity for errors.Is while making sure no nested
// *url.Error (which prints the full URL with its query) survives.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return scrub(ue.Err)
	}
	return err
}

// ParseClass reads a class name back (Unknown for anything else).
func ParseClass(s string) Class {
	for i, n := range classNames {
		if n == s {
			return Class(i)
		}
	}
	return Unknown
}
