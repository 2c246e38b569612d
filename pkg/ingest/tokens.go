package ingest

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// Token registration (POST /v1/tokens) and the bearer tokens of the token
// API and the issuing routes.

// Registration is one issued token the customer's back end registers.
type Registration struct {
	Vendor         string            `json:"vendor"`
	VerificationID string            `json:"verification_id"` // Megvii biz_id, Baidu verify_token
	IssuedAt       *time.Time        `json:"issued_at,omitempty"`
	BizNo          string            `json:"biz_no,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
}

// maxFailingAddrs bounds the client addresses whose wrong bearer tokens
// are tracked (beyond, they share one bucket).
const maxFailingAddrs = 10000

// errUnauthorized and errTooManyFailures are authorized's refusals.
var (
	errUnauthorized    = &reqError{status: http.StatusUnauthorized, reason: "unauthorized", msg: "missing or unknown bearer token"}
	errTooManyFailures = &reqError{status: http.StatusTooManyRequests, reason: "too_many_failures", msg: "too many wrong bearer tokens from this address: retry after Retry-After seconds"}
)

// authorized returns the caller (callerID of its bearer token) of a
// request that carries an accepted bearer token, or its refusal: 401, or
// 429 (the token not checked) for an address that sent FailedTokenBurst
// wrong ones lately.
func (s *Server) authorized(r *http.Request) (string, *reqError) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return "", errUnauthorized
	}
	addr := clientAddr(r)
	if s.failures.Blocked(addr) > 0 {
		return "", errTooManyFailures
	}
	// Hashes of equal length are compared, so that the time taken tells
	// nothing of the configured tokens' lengths.
	got := sha256.Sum256([]byte(tok))
	match := 0
	for _, want := range s.bearers {
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if match != 1 {
		s.failures.Fail(addr)
		return "", errUnauthorized
	}
	return callerID(tok), nil
}

// clientAddr is the request's peer address without its port.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (s *Server) registerTokens(w http.ResponseWriter, r *http.Request) *reqError {
	caller, e := s.authorized(r)
	if e != nil {
		return e
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/json"}
	}
	body, e := readBody(r, s.cfg.MaxBodyBytes)
	if e != nil {
		return e
	}
	regs, err := decodeRegistrations(body)
	if err != nil {
		return &reqError{status: http.StatusBadRequest, reason: "malformed", msg: err.Error()}
	}
	if len(regs) == 0 || len(regs) > s.cfg.MaxBatch {
		return &reqError{status: http.StatusBadRequest, reason: "invalid", msg: fmt.Sprintf("tokens: send 1 to %d registrations", s.cfg.MaxBatch)}
	}
	now := s.cfg.Now().UTC()
	envs := make([]contract.Envelope, 0, len(regs))
	seen := map[string]bool{}
	for i, reg := range regs {
		field := func(f string) string {
			if len(regs) == 1 {
				return f
			}
			return fmt.Sprintf("tokens[%d].%s", i, f)
		}
		ev, err := s.validate(reg, now, field)
		if err != nil {
			return &reqError{status: http.StatusBadRequest, reason: "invalid", msg: err.Error()}
		}
		key := contract.Key(ev.Vendor, ev.VerificationID)
		if seen[key] {
			continue
		}
		seen[key] = true
		if !s.owners.mayRegister(key, caller) {
			return &reqError{status: http.StatusConflict, reason: "foreign_caller", msg: fmt.Sprintf("%s: %s is registered by another caller; nothing was registered", field("verification_id"), key)}
		}
		ev.Caller = caller
		id := contract.EventID(string(ev.Vendor), ev.VerificationID, "token", ev.IssuedAt.Format(time.RFC3339Nano), ev.BizNo)
		envs = append(envs, s.envelope(contract.TypeTokenRegistered, "/ingest"+RouteTokens, id, *ev.IssuedAt, ev, false))
	}
	s.m.batch.Observe(float64(len(envs)))
	if e := s.publish(envs...); e != nil {
		return e
	}
	for _, e := range envs {
		s.owners.bind(e.Key, caller)
	}
	out := make([]map[string]string, len(envs))
	for i, e := range envs {
		out[i] = map[string]string{"key": e.Key, "id": e.ID}
		if vt, ok := strings.CutPrefix(e.Key, string(contract.Baidu)+":"); ok && s.landing != nil {
			out[i]["success_url"] = s.landing.urlFor("success", vt, "", caller, now)
			out[i]["failure_url"] = s.landing.urlFor("failure", vt, "", caller, now)
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"registered": out})
	return nil
}

// decodeRegistrations accepts one registration, an array of them, or
// {"tokens": [...]}, refusing unknown fields.
func decodeRegistrations(body []byte) ([]Registration, error) {
	var raw json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, errors.New("body: want a JSON object or array")
	}
	if dec.More() {
		return nil, errors.New("body: one JSON value expected")
	}
	strict := func(b []byte, v any) error {
		d := json.NewDecoder(bytes.NewReader(b))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("body: %s", jsonMsg(err))
		}
		return nil
	}
	switch raw[0] {
	case '[':
		var regs []Registration
		return regs, strict(raw, &regs)
	case '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, fmt.Errorf("body: %s", jsonMsg(err))
		}
		if list, ok := probe["tokens"]; ok {
			if len(probe) != 1 {
				return nil, errors.New("body: with \"tokens\", no other field")
			}
			var regs []Registration
			return regs, strict(list, &regs)
		}
		var reg Registration
		if err := strict(raw, &reg); err != nil {
			return nil, err
		}
		return []Registration{reg}, nil
	}
	return nil, errors.New("body: want a JSON object or array")
}

func jsonMsg(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("field %s: want %s", ute.Field, ute.Type)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return "issued_at: want RFC 3339, e.g. 2026-01-02T15:04:05Z"
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	return "invalid JSON"
}

func (s *Server) validate(reg Registration, now time.Time, field func(string) string) (contract.Event, error) {
	v, err := contract.ParseVendor(reg.Vendor)
	if err != nil {
		return contract.Event{}, fmt.Errorf("%s: %v", field("vendor"), err)
	}
	if !validID(reg.VerificationID, 256) {
		return contract.Event{}, fmt.Errorf("%s: required, 1-256 printable characters without spaces", field("verification_id"))
	}
	issued := now
	if reg.IssuedAt != nil {
		issued = reg.IssuedAt.UTC()
		switch {
		case issued.After(now.Add(s.cfg.MaxClockSkew)):
			return contract.Event{}, fmt.Errorf("%s: %s is more than %s in the future", field("issued_at"), issued.Format(time.RFC3339), s.cfg.MaxClockSkew)
		case issued.Before(now.Add(-s.cfg.MaxTokenAge)):
			return contract.Event{}, fmt.Errorf("%s: %s is more than %s in the past: its vendor window has closed", field("issued_at"), issued.Format(time.RFC3339), s.cfg.MaxTokenAge)
		}
	}
	if len(reg.BizNo) > 256 {
		return contract.Event{}, fmt.Errorf("%s: at most 256 bytes", field("biz_no"))
	}
	if !contract.PlainText(reg.BizNo) {
		return contract.Event{}, fmt.Errorf("%s: UTF-8 text without control characters", field("biz_no"))
	}
	if len(reg.Metadata) > 32 {
		return contract.Event{}, fmt.Errorf("%s: at most 32 entries", field("metadata"))
	}
	for k, val := range reg.Metadata {
		if k == "" || len(k) > 64 || len(val) > 1024 {
			return contract.Event{}, fmt.Errorf("%s: keys 1-64 bytes, values at most 1024", field("metadata"))
		}
	}
	return contract.Event{Vendor: v, VerificationID: reg.VerificationID, BizNo: reg.BizNo, IssuedAt: &issued, ReceivedAt: now, Metadata: reg.Metadata}, nil
}
