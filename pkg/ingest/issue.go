package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // reference pictures for uploadMatchImage
	_ "image/jpeg"
	_ "image/png"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Token issuing: ingest calls the vendor for the customer's back end and
// registers the token in the same request, so that no registration can be
// forgotten. The answer carries the token only once its registration event
// was acknowledged by the broker; a failed registration gives out nothing
// (a verification nobody can harvest must not start). Retries are safe with
// an Idempotency-Key header (see idempotency.go).

// MegviiIssuer calls get_token. *megvii.Client is one.
type MegviiIssuer interface {
	GetToken(ctx context.Context, tr megvii.TokenRequest) (*megvii.Token, error)
	DoURL(token string) string
}

// BaiduIssuer calls verifyToken/generate, idcard/submit and
// uploadMatchImage. *baidu.Client is one.
type BaiduIssuer interface {
	GenerateVerifyToken(ctx context.Context, planID string) (*baidu.VerifyToken, error)
	SubmitIDCard(ctx context.Context, in baidu.SubmitIDCard) (baidu.Meta, error)
	UploadMatchImage(ctx context.Context, in baidu.UploadMatchImage) (baidu.Meta, error)
}

// IdempotencyKeyHeader names the header that makes an issuing request
// safe to retry.
const IdempotencyKeyHeader = "Idempotency-Key"

// flexString is a parameter given as a JSON string or integer.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a string or an integer")
	}
	if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
		return errors.New("want a string or an integer")
	}
	*f = flexString(n)
	return nil
}

// MegviiIssueRequest is POST /v1/megvii/tokens: get_token's parameters
// without the credentials and the callback URLs, which ingest sets.
type MegviiIssueRequest struct {
	BizNo string `json:"biz_no"`
	// ReturnURL is the customer's page the browser ends on, after ingest's
	// return landing; empty: the landing's short page.
	ReturnURL             string            `json:"return_url,omitempty"`
	BizExtraData          string            `json:"biz_extra_data,omitempty"`
	ComparisonType        flexString        `json:"comparison_type,omitempty"`
	IDCardMode            flexString        `json:"idcard_mode,omitempty"`
	IDCardUneditableField string            `json:"idcard_uneditable_field,omitempty"`
	IDCardName            string            `json:"idcard_name,omitempty"`
	IDCardNumber          string            `json:"idcard_number,omitempty"`
	GetFailReason         flexString        `json:"get_fail_reason,omitempty"`
	Metadata              map[string]string `json:"metadata,omitempty"`
}

// BaiduIssueRequest is POST /v1/baidu/tokens.
type BaiduIssueRequest struct {
	PlanID flexString `json:"plan_id"`
	BizNo  string     `json:"biz_no,omitempty"`
	// SuccessURL and FailureURL are the customer's pages, after ingest's
	// signed landings; empty: the configured redirects.
	SuccessURL string `json:"success_url,omitempty"`
	FailureURL string `json:"failure_url,omitempty"`
	// IDName and IDNo go to idcard/submit in the same request.
	IDName          string `json:"id_name,omitempty"`
	IDNo            string `json:"id_no,omitempty"`
	CertificateType *int   `json:"certificate_type,omitempty"`
	// Image (base64) goes to uploadMatchImage in the same request.
	Image           string            `json:"image,omitempty"`
	QualityControl  string            `json:"quality_control,omitempty"`
	LivenessControl string            `json:"liveness_control,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
}

// IssuedToken is an issuing route's answer.
type IssuedToken struct {
	Vendor      string `json:"vendor"`
	Token       string `json:"token,omitempty"`        // Megvii
	BizID       string `json:"biz_id,omitempty"`       // Megvii
	ExpiredTime int64  `json:"expired_time,omitempty"` // Megvii, Unix seconds
	VerifyToken string `json:"verify_token,omitempty"` // Baidu
	BizNo       string `json:"biz_no,omitempty"`
	URL         string `json:"url"` // the H5 page to send the user to
	SuccessURL  string `json:"success_url,omitempty"`
	FailureURL  string `json:"failure_url,omitempty"`
	Key         string `json:"key"` // the registration event's key
	ID          string `json:"id"`  // and ce_id
}

// refusedFields explains fields a customer may send from habit.
var refusedFields = map[string]string{
	"api_key": "faceharvest adds the credentials", "api_secret": "faceharvest adds the credentials",
	"notify_url": "faceharvest sets notify_url to its callback", "access_token": "faceharvest adds the credentials",
	"verify_token": "faceharvest generates it",
}

// decodeIssue decodes body strictly into v.
func decodeIssue(body []byte, v any) error {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return errors.New("body: want a JSON object")
	}
	for k := range probe {
		if why, ok := refusedFields[k]; ok {
			return fmt.Errorf("%s: not accepted: %s", k, why)
		}
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Errorf("%s: want %s", ute.Field, ute.Type)
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			if len(f) > 66 { // the caller's name, quoted: a prefix is enough
				f = f[:64] + "…\""
			}
			return fmt.Errorf("unknown field %s", f)
		}
		if strings.Contains(msg, "want a string or an integer") {
			return errors.New("a parameter wants a string or an integer: " + strings.TrimPrefix(msg, "json: "))
		}
		return errors.New("body: invalid JSON")
	}
	return nil
}

// checkPage validates a customer page: https, or http on a loopback host
// (development); no credentials in it, no other scheme.
func checkPage(field, u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || len(u) > 2048 || p.Host == "" || p.User != nil || p.Opaque != "" || strings.ContainsAny(u, " \t\r\n\\") {
		return fmt.Errorf("%s: want an absolute https URL", field)
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		h := p.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%s: plain http only for loopback pages (development); want https", field)
	}
	return fmt.Errorf("%s: want an absolute https URL", field)
}

func checkDigits(field string, v flexString, max int) error {
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 || n > max {
		return fmt.Errorf("%s: want 0 to %d", field, max)
	}
	return nil
}

func checkMetadata(md map[string]string) error {
	if len(md) > 32 {
		return errors.New("metadata: at most 32 entries")
	}
	for k, val := range md {
		if k == "" || len(k) > 64 || len(val) > 1024 {
			return errors.New("metadata: keys 1-64 bytes, values at most 1024")
		}
	}
	return nil
}

func (req *MegviiIssueRequest) validate() error {
	if !validID(req.BizNo, 128) {
		return errors.New("biz_no: required, 1-128 printable characters without spaces")
	}
	if err := checkPage("return_url", req.ReturnURL); err != nil {
		return err
	}
	for _, c := range []struct {
		f   string
		v   flexString
		max int
	}{{"comparison_type", req.ComparisonType, 1}, {"idcard_mode", req.IDCardMode, 4}, {"get_fail_reason", req.GetFailReason, 1}} {
		if err := checkDigits(c.f, c.v, c.max); err != nil {
			return err
		}
	}
	if len(req.BizExtraData) > 4096 || len(req.IDCardUneditableField) > 256 || len(req.IDCardName) > 256 || len(req.IDCardNumber) > 64 {
		return errors.New("biz_extra_data at most 4096 bytes; idcard_uneditable_field, idcard_name at most 256; idcard_number at most 64")
	}
	return checkMetadata(req.Metadata)
}

var controlLevels = map[string]bool{"": true, "NONE": true, "LOW": true, "NORMAL": true, "HIGH": true}

func (req *BaiduIssueRequest) validate() error {
	for _, step := range []func() error{req.validatePlan, req.validatePages, req.validateIdentity, req.validateImage} {
		if err := step(); err != nil {
			return err
		}
	}
	return checkMetadata(req.Metadata)
}

// validatePlan checks plan_id and biz_no.
func (req *BaiduIssueRequest) validatePlan() error {
	if req.PlanID == "" || len(req.PlanID) > 64 {
		return errors.New("plan_id: required (the H5 plan's id from the faceprint console)")
	}
	if len(req.BizNo) > 256 {
		return errors.New("biz_no: at most 256 bytes")
	}
	if !contract.PlainText(req.BizNo) {
		return errors.New("biz_no: UTF-8 text without control characters")
	}
	return nil
}

// validatePages checks the customer's pages after the landings.
func (req *BaiduIssueRequest) validatePages() error {
	for f, u := range map[string]string{"success_url": req.SuccessURL, "failure_url": req.FailureURL} {
		if err := checkPage(f, u); err != nil {
			return err
		}
	}
	return nil
}

// validateIdentity checks what goes to idcard/submit.
func (req *BaiduIssueRequest) validateIdentity() error {
	if (req.IDName == "") != (req.IDNo == "") {
		return errors.New("id_name and id_no: give both (for idcard/submit) or neither")
	}
	if len(req.IDName) > 256 || len(req.IDNo) > 64 {
		return errors.New("id_name at most 256 bytes, id_no at most 64")
	}
	if req.CertificateType != nil && (req.IDNo == "" || *req.CertificateType < 0 || *req.CertificateType > 5) {
		return errors.New("certificate_type: 0 to 5, with id_name and id_no")
	}
	return nil
}

// validateImage checks what goes to uploadMatchImage.
func (req *BaiduIssueRequest) validateImage() error {
	if req.Image != "" && req.IDNo != "" {
		return errors.New("image and id_no: give the reference image (uploadMatchImage) or the identity (idcard/submit), not both")
	}
	if req.Image != "" {
		raw, err := base64.StdEncoding.DecodeString(req.Image)
		if err != nil || len(req.Image) > 10<<20 {
			return errors.New("image: want standard base64 of at most 10 MB")
		}
		// Document 001: 图片分辨率小于1920*1080. Checked here for the
		// formats Go reads (JPEG, PNG, GIF), so that no verify_token is
		// generated for a picture uploadMatchImage refuses; others go to
		// the vendor as they are.
		if c, _, err := image.DecodeConfig(bytes.NewReader(raw)); err == nil && (max(c.Width, c.Height) >= 1920 || min(c.Width, c.Height) >= 1080) {
			return fmt.Errorf("image: %dx%d pixels; want under 1920x1080", c.Width, c.Height)
		}
	} else if req.QualityControl != "" || req.LivenessControl != "" {
		return errors.New("quality_control and liveness_control: only with image")
	}
	if !controlLevels[req.QualityControl] || !controlLevels[req.LivenessControl] {
		return errors.New("quality_control, liveness_control: NONE, LOW, NORMAL or HIGH")
	}
	return nil
}

// checkIssue decodes and validates an issuing request's body: what issue
// would refuse before any vendor call is refused before the
// Idempotency-Key is claimed, so invalid bodies write no state.
func checkIssue[T any, P interface {
	*T
	validate() error
}](body []byte) *reqError {
	var req T
	if err := decodeIssue(body, &req); err != nil {
		return &reqError{status: http.StatusBadRequest, reason: "malformed", msg: err.Error()}
	}
	if err := P(&req).validate(); err != nil {
		return &reqError{status: http.StatusBadRequest, reason: "invalid", msg: err.Error()}
	}
	return nil
}

// issueRoute serves an issuing route: authentication first (a stranger
// costs nothing), the caller's rate, then the body and its validation
// (check), a slot among MaxIssuing, the idempotency claim, issue (the
// vendor calls), the registration, the answer.
func (s *Server) issueRoute(route, vendor string, configured func() bool, check func(body []byte) *reqError, issue func(ctx context.Context, body []byte) (IssuedToken, contract.Event, *reqError)) func(http.ResponseWriter, *http.Request) *reqError {
	return func(w http.ResponseWriter, r *http.Request) *reqError {
		caller, e := s.authorized(r)
		if e != nil {
			return e
		}
		if !configured() {
			return &reqError{status: http.StatusNotFound, reason: "not_configured", msg: "issuing " + vendor + " tokens is not configured on this ingest"}
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			return &reqError{status: http.StatusUnsupportedMediaType, reason: "media_type", msg: "want application/json"}
		}
		key := r.Header.Get(IdempotencyKeyHeader)
		if key != "" && !validID(key, 255) {
			return &reqError{status: http.StatusBadRequest, reason: "invalid", msg: IdempotencyKeyHeader + ": 1-255 printable characters without spaces"}
		}
		if !s.issueRate.allow(caller) {
			return &reqError{status: http.StatusTooManyRequests, reason: "caller_rate_limited", msg: fmt.Sprintf("more than %d issuing requests in a burst from this caller (%g a second sustained): retry after Retry-After seconds", s.cfg.IssueBurst, s.cfg.IssueRate)}
		}
		body, e := readBody(r, s.cfg.MaxBodyBytes)
		if e != nil {
			return e
		}
		if e := check(body); e != nil {
			return e
		}
		select {
		case s.issuing <- struct{}{}:
			defer func() { <-s.issuing }()
		default:
			s.m.shed.WithLabelValues(route, shedIssuing).Inc()
			return &reqError{status: http.StatusServiceUnavailable, reason: "overloaded", msg: fmt.Sprintf("%d issuing requests are in progress: nothing was issued; retry after Retry-After seconds", s.cfg.MaxIssuing)}
		}
		// The caller hanging up cuts nothing short: a token the vendor
		// issued is registered, and its answer kept for the retry.
		ctx := context.WithoutCancel(r.Context())
		var claim *Claim
		if key != "" {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
			c, err := s.cfg.Idempotency.Begin(cctx, route, callerOf(r), key, body)
			cancel()
			switch {
			case errors.Is(err, ErrIdempotencyMismatch):
				return &reqError{status: http.StatusUnprocessableEntity, reason: "idempotency_mismatch", msg: err.Error()}
			case errors.Is(err, ErrIdempotencyBusy):
				return &reqError{status: http.StatusConflict, reason: "idempotency_busy", msg: err.Error() + ": retry after Retry-After seconds"}
			case err != nil:
				if !errors.Is(err, ErrIdempotencyNotReady) {
					s.log.Warn("idempotency claim failed", "route", route, "error", err.Error())
				}
				return &reqError{status: http.StatusServiceUnavailable, reason: "broker", msg: "the idempotency state could not be read or written: nothing was issued; retry"}
			case c.Replay != nil:
				s.m.replays.WithLabelValues(vendor).Inc()
				w.Header().Set("Idempotent-Replayed", "true")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(append(append([]byte(nil), c.Replay...), '\n'))
				return nil
			}
			claim = c
		}
		release := func() {
			if claim != nil {
				rctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
				s.cfg.Idempotency.Release(rctx, claim)
				cancel()
			}
		}
		now := s.cfg.Now().UTC()
		vctx, cancel := context.WithTimeout(context.WithValue(ctx, callerKey{}, caller), s.cfg.VendorTimeout)
		out, ev, e := issue(vctx, body)
		cancel()
		if e != nil {
			release()
			return e
		}
		ev.ReceivedAt, ev.IssuedAt, ev.Caller = now, &now, caller
		id := contract.EventID(string(ev.Vendor), ev.VerificationID, "token", now.Format(time.RFC3339Nano), ev.BizNo)
		env := s.envelope(contract.TypeTokenRegistered, "/ingest"+route, id, now, ev, false)
		if e := s.publish(env); e != nil {
			release()
			s.m.unregistered.WithLabelValues(vendor).Inc()
			return &reqError{status: http.StatusServiceUnavailable, reason: "broker", msg: "the vendor issued a token but its registration could not be stored in time: no token is given out; retry (with the same " + IdempotencyKeyHeader + ", safely)"}
		}
		out.Key, out.ID = env.Key, env.ID
		s.owners.bind(env.Key, caller)
		answer, _ := json.Marshal(out)
		if claim != nil {
			fctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
			if err := s.cfg.Idempotency.Finish(fctx, claim, answer); err != nil {
				// The registration is stored, so the token may go out; only
				// a retry of this request would not find its answer.
				s.log.Warn("idempotency answer not stored", "route", route, "error", err.Error())
			}
			cancel()
		}
		s.m.issued.WithLabelValues(vendor).Inc()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(answer, '\n'))
		return nil
	}
}

// callerKey keeps an issuing request's caller in its context, for the
// landing URLs issue signs.
type callerKey struct{}

// callerOf names the bearer token an authorized request carries, to scope
// its Idempotency-Key by: the token's SHA-256, never the token.
func callerOf(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// vendorRefusal turns a failed vendor call into the answer: 429 with
// Retry-After for rate limits, 400 for what the vendor found wrong in the
// customer's parameters, 502 for the rest. The message names the vendor,
// endpoint, class and code, never a parameter's value.
func (s *Server) vendorRefusal(vendor string, err error) *reqError {
	var ve *vendorerr.Error
	if !errors.As(err, &ve) {
		ve = &vendorerr.Error{Vendor: vendor, Class: vendorerr.VendorFault, Message: "unclassified failure"}
	}
	s.m.vendorErrors.WithLabelValues(vendor, ve.Class.String()).Inc()
	s.log.Warn("issuing: vendor call failed", "vendor", vendor, "endpoint", ve.Endpoint, "class", ve.Class.String(), "http_status", ve.HTTPStatus, "code", ve.Code, "request_id", ve.RequestID)
	what := fmt.Sprintf("%s %s: %s", vendor, ve.Endpoint, ve.Class)
	if c := safeCode(ve); c != "" {
		what += " (" + c + ")"
	}
	switch ve.Class {
	case vendorerr.RateLimited:
		return &reqError{status: http.StatusTooManyRequests, reason: "vendor_rate_limited", msg: what + ": the vendor's rate limit; nothing was issued; retry after Retry-After seconds"}
	case vendorerr.CallerBug, vendorerr.NotVerified:
		return &reqError{status: http.StatusBadRequest, reason: "vendor_refused", msg: what + ": the vendor refused the request's parameters; nothing was issued"}
	}
	return &reqError{status: http.StatusBadGateway, reason: "vendor_fault", msg: what + ": nothing was issued"}
}

// safeCode is the vendor's error code, with the argument name Megvii puts
// after BAD_ARGUMENTS or MISSING_ARGUMENTS: names, never values.
func safeCode(ve *vendorerr.Error) string {
	code := ve.Code
	if code == megvii.ErrBadArguments || code == megvii.ErrMissingArguments {
		if _, arg, ok := strings.Cut(ve.Message, ":"); ok {
			arg = strings.TrimSpace(arg)
			simple := arg != "" && len(arg) <= 64
			for _, c := range arg {
				simple = simple && (c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			}
			if simple {
				code += ": " + arg
			}
		}
	}
	if len(code) > 80 {
		code = code[:80]
	}
	return code
}

func (s *Server) issueMegvii(ctx context.Context, body []byte) (IssuedToken, contract.Event, *reqError) {
	{
		var req MegviiIssueRequest
		if err := decodeIssue(body, &req); err != nil {
			return IssuedToken{}, contract.Event{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: err.Error()}
		}
		if err := req.validate(); err != nil {
			return IssuedToken{}, contract.Event{}, &reqError{status: http.StatusBadRequest, reason: "invalid", msg: err.Error()}
		}
		caller, _ := ctx.Value(callerKey{}).(string)
		opts := map[string]string{}
		for k, v := range map[string]string{"comparison_type": string(req.ComparisonType), "idcard_mode": string(req.IDCardMode), "get_fail_reason": string(req.GetFailReason),
			"idcard_uneditable_field": req.IDCardUneditableField, "idcard_name": req.IDCardName, "idcard_number": req.IDCardNumber} {
			if v != "" {
				opts[k] = v
			}
		}
		tr := megvii.TokenRequest{
			NotifyURL: s.landing.base + RouteMegviiCallback, ReturnURL: s.landing.megviiReturnURL(req.BizNo, req.ReturnURL, caller, s.cfg.Now()),
			BizNo: req.BizNo, BizExtraData: req.BizExtraData, Options: opts,
		}
		tok, err := s.cfg.Megvii.GetToken(ctx, tr)
		if err != nil {
			return IssuedToken{}, contract.Event{}, s.vendorRefusal(megvii.Vendor, err)
		}
		if !validID(tok.BizID, 256) || !validID(tok.Token, 1024) {
			return IssuedToken{}, contract.Event{}, s.vendorRefusal(megvii.Vendor, &vendorerr.Error{Vendor: megvii.Vendor, Endpoint: megvii.EndpointGetToken, Class: vendorerr.VendorFault, Message: "token or biz_id unusable"})
		}
		out := IssuedToken{Vendor: megvii.Vendor, Token: tok.Token, BizID: tok.BizID, ExpiredTime: tok.ExpiredTime, BizNo: req.BizNo, URL: s.cfg.Megvii.DoURL(tok.Token)}
		return out, contract.Event{Vendor: contract.Megvii, VerificationID: tok.BizID, BizNo: req.BizNo, Metadata: req.Metadata}, nil
	}
}

func (s *Server) issueBaidu(ctx context.Context, body []byte) (IssuedToken, contract.Event, *reqError) {
	{
		var req BaiduIssueRequest
		if err := decodeIssue(body, &req); err != nil {
			return IssuedToken{}, contract.Event{}, &reqError{status: http.StatusBadRequest, reason: "malformed", msg: err.Error()}
		}
		if err := req.validate(); err != nil {
			return IssuedToken{}, contract.Event{}, &reqError{status: http.StatusBadRequest, reason: "invalid", msg: err.Error()}
		}
		vt, err := s.cfg.Baidu.GenerateVerifyToken(ctx, string(req.PlanID))
		if err != nil {
			return IssuedToken{}, contract.Event{}, s.vendorRefusal(baidu.Vendor, err)
		}
		tok := vt.VerifyToken
		if !validID(tok, 128) {
			return IssuedToken{}, contract.Event{}, s.vendorRefusal(baidu.Vendor, &vendorerr.Error{Vendor: baidu.Vendor, Endpoint: baidu.EndpointGenerate, Class: vendorerr.VendorFault, Message: "verify_token unusable"})
		}
		switch {
		case req.IDNo != "":
			in := baidu.SubmitIDCard{VerifyToken: tok, IDName: req.IDName, IDNo: req.IDNo}
			if req.CertificateType != nil {
				in.CertificateType = *req.CertificateType
			}
			if _, err := s.cfg.Baidu.SubmitIDCard(ctx, in); err != nil {
				return IssuedToken{}, contract.Event{}, s.vendorRefusal(baidu.Vendor, err)
			}
		case req.Image != "":
			in := baidu.UploadMatchImage{VerifyToken: tok, Image: req.Image, QualityControl: req.QualityControl, LivenessControl: req.LivenessControl}
			if _, err := s.cfg.Baidu.UploadMatchImage(ctx, in); err != nil {
				return IssuedToken{}, contract.Event{}, s.vendorRefusal(baidu.Vendor, err)
			}
		}
		caller, _ := ctx.Value(callerKey{}).(string)
		now := s.cfg.Now()
		su := s.landing.urlFor("success", tok, req.SuccessURL, caller, now)
		fu := s.landing.urlFor("failure", tok, req.FailureURL, caller, now)
		out := IssuedToken{Vendor: baidu.Vendor, VerifyToken: tok, BizNo: req.BizNo, URL: baidu.H5URL(s.cfg.BaiduH5URL, tok, su, fu), SuccessURL: su, FailureURL: fu}
		return out, contract.Event{Vendor: contract.Baidu, VerificationID: tok, BizNo: req.BizNo, Metadata: req.Metadata}, nil
	}
}
