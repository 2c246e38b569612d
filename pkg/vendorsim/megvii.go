package vendorsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/megvii"
)

// MegviiSpec shapes one simulated FaceID Lite verification. Zero fields take
// the defaults noted.
type MegviiSpec struct {
	BizNo        string   `json:"biz_no,omitempty"`
	BizExtraData string   `json:"biz_extra_data,omitempty"`
	StartAfter   Duration `json:"start_after,omitempty"`  // NOT_STARTED until then (5 s)
	FinalAfter   Duration `json:"final_after,omitempty"`  // PROCESSING until then (30 s)
	FinalStatus  string   `json:"final_status,omitempty"` // OK; NOT_STARTED or PROCESSING: the flow never ends
	FailReason   string   `json:"fail_reason,omitempty"`  // with WEBRTC_UNSUPPORTED (NETWORK_ERROR), returned only with GetFailReason
	// GetFailReason is get_token's get_fail_reason=1: document 000 returns
	// fail_reason only then (当"get_fail_reason"=1时,可获取...失败原因).
	GetFailReason bool   `json:"get_fail_reason,omitempty"`
	Procedure     string `json:"procedure,omitempty"`   // video, still, selfie, flash (video)
	Liveness      string `json:"liveness,omitempty"`    // PASS or FAIL (PASS)
	IDCardMode    *int   `json:"idcard_mode,omitempty"` // 0 = no ID-card step, 4 = the user chooses; 0 to 4 (1)
	// IDCardUneditableField is get_token's idcard_uneditable_field, which
	// idcard_info echoes (000: 表示 get_token 是选择的 idcard_uneditable_field);
	// empty: the document example's value.
	IDCardUneditableField string `json:"idcard_uneditable_field,omitempty"`
	ComparisonError       string `json:"comparison_error,omitempty"` // e.g. ID_NUMBER_NAME_NOT_MATCH
	ImageBytes            int    `json:"image_bytes,omitempty"`      // per image (Config.ImageBytes)
	NotifyURL             string `json:"notify_url,omitempty"`       // Config.MegviiNotifyURL
	ReturnURL             string `json:"return_url,omitempty"`
	CallbackFormat        string `json:"callback_format,omitempty"` // form or json (Config.MegviiCallbackFormat)
	NoCallback            bool   `json:"no_callback,omitempty"`     // the callback never arrives
	Quirks                *bool  `json:"quirks,omitempty"`          // document 002's template and "data: image" spacing (every other verification)
	// PlainImages serves images as bare base64 strings, without a data URI
	// prefix: document 000 says images come as a base64 string or null.
	PlainImages bool `json:"plain_images,omitempty"`
	// AllWithoutSelfies makes return_image=4 leave the selfies out (a
	// vendor that reads "all images" as the three 000's images field
	// names): the selfies then come only with 5 and 6. Off by default: 000
	// and 002 say 4 returns all images.
	AllWithoutSelfies bool     `json:"all_without_selfies,omitempty"`
	Faults            []string `json:"faults,omitempty"` // faults for this verification's next calls, in order
}

type megviiVerification struct {
	spec      MegviiSpec
	bizID     string
	token     string
	created   time.Time
	served    int            // get_result answers that carried data (the budget)
	calls     map[string]int // by endpoint
	outcomes  map[string]int // get_result answers by outcome
	cbTries   int
	cbDone    bool
	cbOutcome string
	// returnOutcome is how the browser's return_url POST went ("" when
	// there was none yet).
	returnOutcome string
}

func (v *megviiVerification) status(now time.Time) megvii.Status {
	switch {
	case now.Before(v.created.Add(time.Duration(v.spec.StartAfter))):
		return megvii.StatusNotStarted
	case now.Before(v.created.Add(time.Duration(v.spec.FinalAfter))):
		return megvii.StatusProcessing
	}
	return megvii.Status(v.spec.FinalStatus)
}

func (s *Sim) megviiDefaults(spec MegviiSpec) (MegviiSpec, error) {
	d := s.cfg.DefaultMegvii
	if spec.StartAfter == 0 {
		spec.StartAfter = d.StartAfter
		if spec.StartAfter == 0 {
			spec.StartAfter = Duration(5 * time.Second)
		}
	}
	if spec.FinalAfter == 0 {
		spec.FinalAfter = d.FinalAfter
		if spec.FinalAfter == 0 {
			spec.FinalAfter = Duration(30 * time.Second)
		}
	}
	if spec.FinalAfter < spec.StartAfter {
		spec.FinalAfter = spec.StartAfter
	}
	spec.FinalStatus = strings.ToUpper(firstNonEmpty(spec.FinalStatus, d.FinalStatus, string(megvii.StatusOK)))
	if !megvii.Status(spec.FinalStatus).Known() {
		return spec, fmt.Errorf("final_status %q is not a FaceID Lite status", spec.FinalStatus)
	}
	spec.Procedure = strings.ToLower(firstNonEmpty(spec.Procedure, d.Procedure, megvii.ProcedureVideo))
	switch spec.Procedure {
	case megvii.ProcedureVideo, megvii.ProcedureStill, megvii.ProcedureSelfie, megvii.ProcedureFlash:
	default:
		return spec, fmt.Errorf("procedure %q: want video, still, selfie or flash", spec.Procedure)
	}
	spec.Liveness = strings.ToUpper(firstNonEmpty(spec.Liveness, d.Liveness, "PASS"))
	if spec.IDCardMode == nil {
		spec.IDCardMode = d.IDCardMode
		if spec.IDCardMode == nil {
			one := 1
			spec.IDCardMode = &one
		}
	}
	if m := *spec.IDCardMode; m < 0 || m > 4 {
		// 000 names modes 0 (no ID card) to 4 (the user picks photo or
		// typing); it lists no others.
		return spec, fmt.Errorf("idcard_mode %d: want 0 to 4", m)
	}
	if spec.ImageBytes == 0 {
		spec.ImageBytes = max(d.ImageBytes, s.cfg.ImageBytes)
	}
	spec.NotifyURL = firstNonEmpty(spec.NotifyURL, d.NotifyURL, s.cfg.MegviiNotifyURL)
	spec.CallbackFormat = firstNonEmpty(spec.CallbackFormat, d.CallbackFormat, s.cfg.MegviiCallbackFormat)
	if spec.CallbackFormat != megvii.FormatForm && spec.CallbackFormat != megvii.FormatJSON {
		return spec, fmt.Errorf("callback_format %q: want form or json", spec.CallbackFormat)
	}
	spec.NoCallback = spec.NoCallback || d.NoCallback
	if spec.FailReason == "" && spec.FinalStatus == string(megvii.StatusWebRTCUnsupported) {
		spec.FailReason = "NETWORK_ERROR"
	}
	for _, f := range spec.Faults {
		if !validFault(f) {
			return spec, fmt.Errorf("unknown fault %q", f)
		}
	}
	return spec, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// MegviiCreated is what creating a verification returns.
type MegviiCreated struct {
	BizID       string    `json:"biz_id"`
	Token       string    `json:"token"`
	BizNo       string    `json:"biz_no"`
	Created     time.Time `json:"created"`
	ExpiredTime int64     `json:"expired_time"`
}

// CreateMegvii starts a verification, as get_token would.
func (s *Sim) CreateMegvii(spec MegviiSpec) (MegviiCreated, error) {
	spec, err := s.megviiDefaults(spec)
	if err != nil {
		return MegviiCreated{}, err
	}
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// biz_id looks like the documents': "<unix seconds>,<uuid-like>".
	id := s.newIDLocked("")
	bizID := fmt.Sprintf("%d,%s-%s-%s-%s-%s", now.Unix(), id[:8], id[8:12], id[12:16], id[16:20], id[20:24]+id[:8])
	if spec.BizNo == "" {
		spec.BizNo = "biz-" + id[:16]
	}
	if spec.Quirks == nil {
		q := s.seq%2 == 0
		spec.Quirks = &q
	}
	v := &megviiVerification{spec: spec, bizID: bizID, token: s.newIDLocked("tok-"), created: now, calls: map[string]int{}, outcomes: map[string]int{}}
	s.megvii[bizID] = v
	s.metrics.verifs.WithLabelValues("megvii").Set(float64(len(s.megvii)))
	if !spec.NoCallback && spec.NotifyURL != "" && megvii.Status(spec.FinalStatus).Final() {
		s.scheduleLocked(now.Add(time.Duration(spec.FinalAfter)), "megvii", bizID)
	}
	return MegviiCreated{BizID: bizID, Token: v.token, BizNo: spec.BizNo, Created: now, ExpiredTime: now.Add(s.cfg.MegviiRetention).Unix()}, nil
}

// MegviiHandler serves the FaceID Lite API.
func (s *Sim) MegviiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/faceid/lite/get_result", s.handleGetResult)
	mux.HandleFunc("/faceid/lite/get_token", s.handleGetToken)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.megviiError(w, "unknown", http.StatusNotFound, megvii.ErrAPINotFound)
	})
	return mux
}

func (s *Sim) megviiError(w http.ResponseWriter, endpoint string, status int, msg string) {
	code := msg
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	s.metrics.requests.WithLabelValues("megvii", endpoint, code).Inc()
	writeJSON(w, status, map[string]any{"error_message": msg, "request_id": s.requestID(), "time_used": 4})
}

func (s *Sim) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d,%s", s.clk.Now().Unix(), s.newIDLocked("")[:24])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// megviiAuth checks api_key/api_secret; it writes the error and returns false.
func (s *Sim) megviiAuth(w http.ResponseWriter, r *http.Request, endpoint string, required ...string) bool {
	for _, k := range append([]string{"api_key", "api_secret"}, required...) {
		if r.Form.Get(k) == "" {
			s.megviiError(w, endpoint, http.StatusBadRequest, megvii.ErrMissingArguments+": "+k)
			return false
		}
	}
	if r.Form.Get("api_key") != s.cfg.MegviiAPIKey || r.Form.Get("api_secret") != s.cfg.MegviiAPISecret {
		s.megviiError(w, endpoint, http.StatusForbidden, megvii.ErrAuthentication)
		return false
	}
	return true
}

// preServeFault answers the faults that happen before any data is served.
// It returns true when it answered.
func (s *Sim) preServeFault(w http.ResponseWriter, vendor, endpoint, fault string) bool {
	switch fault {
	case FaultReset:
		s.metrics.requests.WithLabelValues(vendor, endpoint, fault).Inc()
		resetConn(w)
		return true
	case FaultHTML:
		s.metrics.requests.WithLabelValues(vendor, endpoint, fault).Inc()
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"))
		return true
	}
	if vendor == "megvii" {
		switch fault {
		case FaultInternal:
			s.megviiError(w, endpoint, http.StatusInternalServerError, megvii.ErrInternal)
		case FaultConcurrency, FaultClusterLimit:
			s.megviiError(w, endpoint, http.StatusForbidden, megvii.ErrConcurrencyLimitExceeded)
		case FaultAuth, FaultForeignAccessToken:
			s.megviiError(w, endpoint, http.StatusForbidden, megvii.ErrAuthentication)
		case FaultAuthorization:
			s.megviiError(w, endpoint, http.StatusForbidden, megvii.ErrAuthorization+":Denied.")
		case FaultQuota:
			s.megviiError(w, endpoint, http.StatusForbidden, megvii.ErrAuthorization+":Quota exceeded.")
		default:
			return false
		}
		return true
	}
	return s.baiduPreServeFault(w, endpoint, fault)
}

func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// serveBody writes a 200 JSON body, applying the serve-phase faults.
func (s *Sim) serveBody(ctx context.Context, w http.ResponseWriter, vendor, endpoint, fault string, body []byte) {
	outcome := "ok"
	switch fault {
	case FaultMalformed:
		body = body[:len(body)/2]
		outcome = fault
	case FaultSlow:
		outcome = fault
	}
	s.metrics.requests.WithLabelValues(vendor, endpoint, outcome).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if fault == FaultSlow {
		half := len(body) / 2
		_, _ = w.Write(body[:half])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		t := time.NewTimer(s.cfg.SlowPause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		body = body[half:]
	}
	_, _ = w.Write(body)
}

func (s *Sim) handleGetResult(w http.ResponseWriter, r *http.Request) {
	const ep = megvii.EndpointGetResult
	if err := r.ParseForm(); err != nil {
		s.megviiError(w, ep, http.StatusBadRequest, megvii.ErrBadArguments+": query")
		return
	}
	if !s.megviiAuth(w, r, ep, "biz_id") {
		return
	}
	ri, err := strconv.Atoi(firstNonEmpty(r.Form.Get("return_image"), "0"))
	if err != nil || ri < 0 || ri > 6 {
		s.megviiError(w, ep, http.StatusBadRequest, megvii.ErrBadArguments+": return_image")
		return
	}
	rvt := firstNonEmpty(r.Form.Get("return_verify_time"), "0")
	if rvt != "0" && rvt != "1" {
		s.megviiError(w, ep, http.StatusBadRequest, megvii.ErrBadArguments+": return_verify_time")
		return
	}
	bizID := r.Form.Get("biz_id")
	release, limited := s.admitAPI(r.Context(), "megvii")
	s.mu.Lock()
	v := s.megvii[bizID]
	if v != nil {
		v.calls[ep]++
	}
	if limited != "" {
		if v != nil {
			v.outcomes[megvii.ErrConcurrencyLimitExceeded]++
		}
		s.mu.Unlock()
		s.megviiError(w, ep, http.StatusForbidden, megvii.ErrConcurrencyLimitExceeded)
		return
	}
	defer release()
	var perV *[]string
	if v != nil {
		perV = &v.spec.Faults
	}
	fault := s.drawFaultLocked("megvii", perV)
	now := s.clk.Now()
	var answer string
	switch {
	case fault != "" && fault != FaultSlow && fault != FaultMalformed && fault != FaultTruncatedBase64:
		answer = fault
	case v == nil:
		answer = megvii.ErrResultNotFound
	case now.After(v.created.Add(s.cfg.MegviiRetention-s.cfg.MegviiWindowLead)) || v.served >= s.cfg.MegviiCallBudget:
		answer = megvii.ErrDataDestroyed
	default:
		v.served++
		answer = "ok"
	}
	if v != nil {
		v.outcomes[answer]++
	}
	var spec MegviiSpec
	var status megvii.Status
	verifiedAt := now
	if v != nil {
		spec, status = v.spec, v.status(now)
		if status.Final() {
			// The verify time (return_verify_time=1) is when the flow
			// ended, not when get_result was called.
			verifiedAt = v.created.Add(time.Duration(v.spec.FinalAfter))
		}
	}
	s.mu.Unlock()

	switch answer {
	case megvii.ErrResultNotFound:
		s.megviiError(w, ep, http.StatusBadRequest, megvii.ErrResultNotFound)
		return
	case megvii.ErrDataDestroyed:
		s.megviiError(w, ep, http.StatusForbidden, megvii.ErrDataDestroyed)
		return
	case "ok":
	default:
		s.preServeFault(w, "megvii", ep, fault)
		return
	}
	body := s.megviiResult(bizID, spec, status, verifiedAt, megvii.ReturnImage(ri), rvt == "1", fault == FaultTruncatedBase64, true)
	s.serveBody(r.Context(), w, "megvii", ep, fault, body)
}

func (s *Sim) handleGetToken(w http.ResponseWriter, r *http.Request) {
	const ep = megvii.EndpointGetToken
	if r.Method != http.MethodPost {
		s.megviiError(w, ep, http.StatusNotFound, megvii.ErrAPINotFound)
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		_ = r.ParseMultipartForm(1 << 20)
	} else {
		_ = r.ParseForm()
	}
	s.countAPICall("megvii", ep)
	if !s.megviiAuth(w, r, ep, "return_url", "notify_url", "biz_no") {
		return
	}
	release, limited := s.admitAPI(r.Context(), "megvii")
	if limited != "" {
		s.megviiError(w, ep, http.StatusForbidden, megvii.ErrConcurrencyLimitExceeded)
		return
	}
	defer release()
	s.mu.Lock()
	fault := s.drawFaultLocked("megvii", nil)
	s.mu.Unlock()
	if fault != "" && s.preServeFault(w, "megvii", ep, fault) {
		return // nothing was issued
	}
	spec := MegviiSpec{BizNo: r.Form.Get("biz_no"), BizExtraData: r.Form.Get("biz_extra_data"), NotifyURL: r.Form.Get("notify_url"), ReturnURL: r.Form.Get("return_url"),
		GetFailReason: r.Form.Get("get_fail_reason") == "1", IDCardUneditableField: r.Form.Get("idcard_uneditable_field")}
	if m := r.Form.Get("idcard_mode"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 || n > 4 {
			s.megviiError(w, ep, http.StatusBadRequest, megvii.ErrBadArguments+": idcard_mode")
			return
		}
		spec.IDCardMode = &n
	}
	c, err := s.CreateMegvii(spec)
	if err != nil {
		s.megviiError(w, ep, http.StatusBadRequest, megvii.ErrBadArguments+": "+err.Error())
		return
	}
	s.serveBody(r.Context(), w, "megvii", ep, fault, mustJSON(map[string]any{"request_id": s.requestID(), "time_used": 12, "token": c.Token, "biz_id": c.BizID, "expired_time": c.ExpiredTime}))
}

// deliverMegvii POSTs the signed callback of a finished verification.
func (s *Sim) deliverMegvii(ctx context.Context, bizID string) {
	now := s.clk.Now()
	s.mu.Lock()
	v := s.megvii[bizID]
	if v == nil || v.cbDone {
		s.mu.Unlock()
		return
	}
	v.cbTries++
	spec, status, tries := v.spec, v.status(now), v.cbTries
	s.mu.Unlock()

	data := string(s.megviiResult(bizID, spec, status, now, megvii.ReturnImageNone, false, false, false))
	cb := megvii.Callback{Data: data, Sign: megvii.Sign(s.cfg.MegviiAPISecret, data)}
	body, ct := cb.EncodeForm(), "application/x-www-form-urlencoded"
	if spec.CallbackFormat == megvii.FormatJSON {
		body, ct = cb.EncodeJSON(), "application/json"
	}
	if tries == 1 && (strings.HasPrefix(spec.ReturnURL, "http://") || strings.HasPrefix(spec.ReturnURL, "https://")) {
		s.returnMegvii(ctx, bizID, spec.ReturnURL, ct, body)
	}
	outcome := s.deliver(ctx, http.MethodPost, spec.NotifyURL, ct, body, 300)
	s.mu.Lock()
	defer s.mu.Unlock()
	v.cbOutcome = outcome
	if outcome == "delivered" {
		v.cbDone = true
	} else if outcome == "bad_url" || !s.retryLocked("megvii", bizID, tries) {
		outcome = "gave_up"
	} else {
		outcome = "retry"
	}
	s.metrics.callbacks.WithLabelValues("megvii", outcome).Inc()
}

// returnMegvii is the user's browser sent to return_url when the flow ends:
// document 000 says return_url is called by POST through a page redirect,
// with the same body as notify_url. A browser tries once and does not
// follow the page's own redirect here; the outcome is recorded.
func (s *Sim) returnMegvii(ctx context.Context, bizID, returnURL, ct string, body []byte) {
	outcome := s.deliver(ctx, http.MethodPost, returnURL, ct, body, 400)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.megvii[bizID]; v != nil {
		v.returnOutcome = outcome
	}
	s.metrics.callbacks.WithLabelValues("megvii_return", outcome).Inc()
}

// CallbackData returns the data string the simulator would sign and send for
// a verification's callback at the current simulated time ("" if unknown).
func (s *Sim) CallbackData(bizID string) string {
	now := s.clk.Now()
	s.mu.Lock()
	v := s.megvii[bizID]
	if v == nil {
		s.mu.Unlock()
		return ""
	}
	spec, status := v.spec, v.status(now.Add(time.Duration(v.spec.FinalAfter)))
	s.mu.Unlock()
	return string(s.megviiResult(bizID, spec, status, now, megvii.ReturnImageNone, false, false, false))
}
