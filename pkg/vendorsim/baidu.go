package vendorsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"image"
	_ "image/gif" // uploadMatchImage pictures
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// BaiduSpec shapes one simulated faceprint verification. Zero fields take the
// defaults noted.
type BaiduSpec struct {
	PlanID         string   `json:"plan_id,omitempty"`
	CompleteAfter  Duration `json:"complete_after,omitempty"`  // the user finishes then (60 s); past the 2 h token window means never
	NeverCompletes bool     `json:"never_completes,omitempty"` // the user never starts
	Outcome        string   `json:"outcome,omitempty"`         // success or failure (success)
	Attempts       int      `json:"attempts,omitempty"`        // attempts made (1); the last passes on success
	// AttemptGap is the time between two attempts (30 s): the last one ends
	// at CompleteAfter, attempt i AttemptGap×(Attempts−i) before. Each
	// failed attempt but the last sends the browser to the failure page
	// (001: with "URL stays valid on failure" the user retries).
	AttemptGap Duration `json:"attempt_gap,omitempty"`
	// Media is what the account records: none (the default: 001 says
	// 视频录制功能默认不开启, and media/query then gives no video data),
	// process_video or video.
	Media      string   `json:"media,omitempty"`
	ImageBytes int      `json:"image_bytes,omitempty"`
	VideoBytes int64    `json:"video_bytes,omitempty"`
	SuccessURL string   `json:"success_url,omitempty"` // Config.BaiduSuccessURL
	FailureURL string   `json:"failure_url,omitempty"` // Config.BaiduFailureURL
	NoRedirect bool     `json:"no_redirect,omitempty"` // the browser never lands on the customer's page
	Faults     []string `json:"faults,omitempty"`
}

type baiduVerification struct {
	spec     BaiduSpec
	token    string
	created  time.Time
	idName   string
	idNo     string
	calls    map[string]int
	outcomes map[string]int
	rdTries  int
	rdSched  bool // the redirect is scheduled
	rdDone   bool
	rdResult string
	opened   int // times the H5 URL was opened
	// rdAttempt is the attempt whose landing is delivered next (from 1).
	rdAttempt int
	// spoiled: a query endpoint was called before the user's first attempt
	// ended. 001: 用户进行操作后再查询接口,否则生成Token无法生效 — the token
	// then never takes effect: no attempt happens, and once its two hours
	// are over it answers as an unused token.
	spoiled bool
}

// completedAt returns when the user finished (the last attempt ended), and
// whether they ever did.
func (v *baiduVerification) completedAt(tokenTTL time.Duration) (time.Time, bool) {
	if v.spoiled || v.spec.NeverCompletes || time.Duration(v.spec.CompleteAfter) >= tokenTTL {
		return time.Time{}, false
	}
	return v.created.Add(time.Duration(v.spec.CompleteAfter)), true
}

// attemptAt is when attempt i (from 1) ended, for a verification that
// completes.
func (v *baiduVerification) attemptAt(done time.Time, i int) time.Time {
	return done.Add(-time.Duration(v.spec.Attempts-i) * time.Duration(v.spec.AttemptGap))
}

// attemptsBy counts the attempts ended by now.
func (v *baiduVerification) attemptsBy(done, now time.Time) int {
	n := 0
	for i := 1; i <= v.spec.Attempts; i++ {
		if !v.attemptAt(done, i).After(now) {
			n = i
		}
	}
	return n
}

// passed reports whether attempt i passed: on success, the last one.
func (v *baiduVerification) passed(i int) bool {
	return v.spec.Outcome == "success" && i == v.spec.Attempts
}

func (s *Sim) baiduDefaults(spec BaiduSpec) (BaiduSpec, error) {
	d := s.cfg.DefaultBaidu
	if spec.CompleteAfter == 0 {
		spec.CompleteAfter = d.CompleteAfter
		if spec.CompleteAfter == 0 {
			spec.CompleteAfter = Duration(60 * time.Second)
		}
	}
	spec.NeverCompletes = spec.NeverCompletes || d.NeverCompletes
	spec.Outcome = strings.ToLower(firstNonEmpty(spec.Outcome, d.Outcome, "success"))
	if spec.Outcome != "success" && spec.Outcome != "failure" {
		return spec, fmt.Errorf("outcome %q: want success or failure", spec.Outcome)
	}
	if spec.Attempts == 0 {
		spec.Attempts = max(d.Attempts, 1)
	}
	if spec.AttemptGap == 0 {
		spec.AttemptGap = d.AttemptGap
		if spec.AttemptGap == 0 {
			spec.AttemptGap = Duration(30 * time.Second)
		}
	}
	if spec.AttemptGap < 0 || time.Duration(spec.AttemptGap)*time.Duration(spec.Attempts-1) > time.Duration(spec.CompleteAfter) {
		return spec, fmt.Errorf("attempt_gap %s × %d attempts: the first would end before the token exists", time.Duration(spec.AttemptGap), spec.Attempts)
	}
	spec.Media = strings.ToLower(firstNonEmpty(spec.Media, d.Media, "none"))
	if spec.Media != "process_video" && spec.Media != "video" && spec.Media != "none" {
		return spec, fmt.Errorf("media %q: want process_video, video or none", spec.Media)
	}
	if spec.ImageBytes == 0 {
		spec.ImageBytes = max(d.ImageBytes, s.cfg.ImageBytes)
	}
	if spec.VideoBytes == 0 {
		spec.VideoBytes = max(d.VideoBytes, s.cfg.VideoBytes)
	}
	spec.SuccessURL = firstNonEmpty(spec.SuccessURL, d.SuccessURL, s.cfg.BaiduSuccessURL)
	spec.FailureURL = firstNonEmpty(spec.FailureURL, d.FailureURL, s.cfg.BaiduFailureURL)
	spec.NoRedirect = spec.NoRedirect || d.NoRedirect
	for _, f := range spec.Faults {
		if !validFault(f) {
			return spec, fmt.Errorf("unknown fault %q", f)
		}
	}
	return spec, nil
}

// BaiduCreated is what creating a verification returns.
type BaiduCreated struct {
	VerifyToken string    `json:"verify_token"`
	Created     time.Time `json:"created"`
}

// CreateBaidu starts a verification, as verifyToken/generate would.
func (s *Sim) CreateBaidu(spec BaiduSpec) (BaiduCreated, error) {
	own := spec // before the configured default pages
	own.SuccessURL = firstNonEmpty(own.SuccessURL, s.cfg.DefaultBaidu.SuccessURL)
	own.FailureURL = firstNonEmpty(own.FailureURL, s.cfg.DefaultBaidu.FailureURL)
	spec, err := s.baiduDefaults(spec)
	if err != nil {
		return BaiduCreated{}, err
	}
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.newIDLocked("")[:24]
	if s.cfg.BaiduPages != nil {
		su, fu := s.cfg.BaiduPages(tok)
		spec.SuccessURL = firstNonEmpty(own.SuccessURL, su, spec.SuccessURL)
		spec.FailureURL = firstNonEmpty(own.FailureURL, fu, spec.FailureURL)
	}
	v := &baiduVerification{spec: spec, token: tok, created: now, calls: map[string]int{}, outcomes: map[string]int{}}
	s.baidu[tok] = v
	s.metrics.verifs.WithLabelValues("baidu").Set(float64(len(s.baidu)))
	s.scheduleRedirectLocked(v)
	return BaiduCreated{VerifyToken: tok, Created: now}, nil
}

// scheduleRedirectLocked schedules v's browser redirect once it has a page
// to go to, when the user finishes (at once if they already have).
func (s *Sim) scheduleRedirectLocked(v *baiduVerification) {
	if v.rdSched || v.spec.NoRedirect || v.rdDone {
		return
	}
	if v.rdAttempt == 0 {
		v.rdAttempt = 1
	}
	if s.redirectURL(v) == "" {
		return
	}
	if done, ok := v.completedAt(s.cfg.BaiduVerifyTokenTTL); ok {
		v.rdSched = true
		at := v.attemptAt(done, v.rdAttempt)
		if now := s.clk.Now(); at.Before(now) {
			at = now
		}
		s.scheduleLocked(at, "baidu", v.token)
	}
}

// SetBaiduPages sets the success and failure pages of a verification, as
// the customer does when it builds the H5 URL for a token it generated (for
// faceharvest: the signed landing URLs ingest answered at registration).
// Empty values keep the pages it has.
func (s *Sim) SetBaiduPages(verifyToken, successURL, failureURL string) error {
	for _, u := range []string{successURL, failureURL} {
		if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("page %q: want an absolute http(s) URL", u)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.baidu[verifyToken]
	if v == nil {
		return fmt.Errorf("no Baidu verification %q", verifyToken)
	}
	v.spec.SuccessURL = firstNonEmpty(successURL, v.spec.SuccessURL)
	v.spec.FailureURL = firstNonEmpty(failureURL, v.spec.FailureURL)
	s.scheduleRedirectLocked(v)
	return nil
}

// redirectURL is the page the browser is sent to after attempt
// v.rdAttempt, with verify_token appended as a query parameter ('&' when
// the page has a query already): the success page after the attempt that
// passed, the failure page after the others. The vendor documents do not
// describe this redirect; a page that already carries a query keeps it.
func (s *Sim) redirectURL(v *baiduVerification) string {
	target := v.spec.SuccessURL
	if !v.passed(max(v.rdAttempt, 1)) {
		target = v.spec.FailureURL
	}
	if target == "" {
		return ""
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	return target + sep + "verify_token=" + url.QueryEscape(v.token)
}

// RevokeBaiduTokens forgets every access_token, as if they had all expired
// early: the next calls answer 110 and clients must mint new ones.
func (s *Sim) RevokeBaiduTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = map[string]time.Time{}
}

// BaiduHandler serves the access-token grant, the faceprint API and the media
// URLs it hands out.
func (s *Sim) BaiduHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth/2.0/token", s.handleBaiduToken)
	mux.HandleFunc("POST /rpc/2.0/brain/solution/faceprint/{endpoint...}", s.handleFaceprint)
	mux.HandleFunc("GET /media/{token}/{file}", s.handleMedia)
	mux.HandleFunc("GET "+BaiduH5Path, s.handleH5)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.metrics.requests.WithLabelValues("baidu", "unknown", "3").Inc()
		writeJSON(w, http.StatusNotFound, map[string]any{"error_code": 3, "error_msg": "Unsupported openapi method"})
	})
	return mux
}

// BaiduH5Path is where the simulated Baidu serves the H5 page a user opens
// (in production https://brain.baidu.com/face/print/, a host of its own):
// ?token=<verify_token>&successUrl=<page>&failedUrl=<page>.
const BaiduH5Path = "/face/print/"

// handleH5 is the user opening the H5 URL: the flow's pages are the ones in
// the URL (as the customer built it), and the simulated user goes through
// the flow on the verification's schedule.
func (s *Sim) handleH5(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	err := s.SetBaiduPages(q.Get("token"), q.Get("successUrl"), q.Get("failedUrl"))
	s.mu.Lock()
	if v := s.baidu[q.Get("token")]; v != nil {
		v.opened++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, "<!doctype html><title>faceprint</title><p>%s</p>\n", html.EscapeString(err.Error()))
		return
	}
	_, _ = io.WriteString(w, "<!doctype html><title>faceprint</title><p>Simulated H5 faceprint flow started.</p>\n")
}

func (s *Sim) handleBaiduToken(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.Form.Get("grant_type") != "client_credentials" {
		s.metrics.requests.WithLabelValues("baidu", baidu.EndpointToken, "unsupported_grant_type").Inc()
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "The authorization grant type is not supported"})
		return
	}
	if r.Form.Get("client_id") != s.cfg.BaiduAPIKey || r.Form.Get("client_secret") != s.cfg.BaiduSecretKey {
		s.metrics.requests.WithLabelValues("baidu", baidu.EndpointToken, "invalid_client").Inc()
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "unknown client id"})
		return
	}
	now := s.clk.Now()
	tok := s.mintAccessToken(now)
	s.metrics.requests.WithLabelValues("baidu", baidu.EndpointToken, "ok").Inc()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "expires_in": int(s.cfg.BaiduAccessTokenTTL.Seconds()),
		"refresh_token": "25." + tok[3:], "scope": "public brain_all_scope", "session_key": "sim", "session_secret": "sim"})
}

func (s *Sim) mintAccessToken(now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := fmt.Sprintf("24.%s.%d.%d.%s", s.newIDLocked(""), int(s.cfg.BaiduAccessTokenTTL.Seconds()), now.Unix(), s.newIDLocked("")[:10])
	s.tokens[tok] = now.Add(s.cfg.BaiduAccessTokenTTL)
	return tok
}

// platformError answers a Baidu AI platform error (error_code/error_msg).
func (s *Sim) platformError(w http.ResponseWriter, endpoint string, status, code int, msg string) {
	s.metrics.requests.WithLabelValues("baidu", endpoint, strconv.Itoa(code)).Inc()
	writeJSON(w, status, map[string]any{"error_code": code, "error_msg": msg, "log_id": s.logID()})
}

// faceprintError answers a faceprint error (success false, code/message).
func (s *Sim) faceprintError(w http.ResponseWriter, endpoint string, code int, msg string) {
	s.metrics.requests.WithLabelValues("baidu", endpoint, strconv.Itoa(code)).Inc()
	writeJSON(w, http.StatusOK, map[string]any{"success": false, "code": code, "message": msg, "log_id": s.logID()})
}

func (s *Sim) logID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return strconv.FormatUint(1_000_000_000+s.seq*7919%9_000_000_000, 10)
}

// Simulated faceprint codes: the documents give the message of an invalid or
// expired verify_token but not its code; these codes are the simulator's.
const (
	simCodeTokenInvalid = 216901
	simCodeNotFinished  = 216903
	simCodeLivenessFail = 223120
)

func (s *Sim) baiduPreServeFault(w http.ResponseWriter, endpoint, fault string) bool {
	switch fault {
	case FaultInternal:
		s.platformError(w, endpoint, http.StatusInternalServerError, baidu.CodeServiceUnavailable, "Service temporarily unavailable")
	case FaultConcurrency:
		s.platformError(w, endpoint, http.StatusOK, baidu.CodeQPSLimit, "Open api qps request limit reached")
	case FaultClusterLimit:
		s.platformError(w, endpoint, http.StatusOK, baidu.CodeClusterLimit, "Open api request limit reached")
	case FaultAuth:
		s.platformError(w, endpoint, http.StatusOK, baidu.CodeTokenInvalid, "Access token invalid or no longer valid")
	case FaultAuthorization:
		s.platformError(w, endpoint, http.StatusOK, baidu.CodeDailyLimit, "Open api daily request limit reached")
	case FaultQuota:
		s.platformError(w, endpoint, http.StatusOK, baidu.CodeTotalLimit, "Open api total request limit reached")
	case FaultForeignAccessToken:
		s.faceprintError(w, endpoint, simCodeTokenInvalid, baidu.TokenInvalidMessage)
	default:
		return false
	}
	return true
}

func (s *Sim) handleFaceprint(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("endpoint")
	known := false
	for _, e := range baidu.Endpoints {
		known = known || e == ep
	}
	if !known {
		s.platformError(w, "unknown", http.StatusOK, 3, "Unsupported openapi method")
		return
	}
	now := s.clk.Now()
	tok := r.URL.Query().Get("access_token")
	s.mu.Lock()
	exp, ok := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !ok:
		s.platformError(w, ep, http.StatusOK, baidu.CodeTokenInvalid, "Access token invalid or no longer valid")
		return
	case now.After(exp):
		s.platformError(w, ep, http.StatusOK, baidu.CodeTokenExpired, "Access token expired")
		return
	}
	// 001, every call: Content-Type为application/json (the header, not only
	// the body's shape). The document gives no code for another type; the
	// simulator answers invalid parameter.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: Content-Type, want application/json")
		return
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&body); err != nil {
		s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: body is not JSON")
		return
	}
	str := func(k string) string {
		var v any
		_ = json.Unmarshal(body[k], &v)
		switch x := v.(type) {
		case string:
			return x
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return ""
	}
	s.countAPICall("baidu", ep)
	if ep == baidu.EndpointGenerate {
		if str("plan_id") == "" {
			s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: plan_id")
			return
		}
	} else if str("verify_token") == "" {
		s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: verify_token")
		return
	}
	release, limited := s.admitAPI(r.Context(), "baidu")
	vt := str("verify_token")
	s.mu.Lock()
	v := s.baidu[vt]
	if v != nil {
		v.calls[ep]++
	}
	if limited != "" {
		if v != nil {
			v.outcomes[ep+":18"]++
		}
		s.mu.Unlock()
		s.platformError(w, ep, http.StatusOK, baidu.CodeQPSLimit, "Open api qps request limit reached")
		return
	}
	defer release()
	var perV *[]string
	if v != nil {
		perV = &v.spec.Faults
	}
	fault := s.drawFaultLocked("baidu", perV)
	if fault == FaultAuth {
		s.tokens = map[string]time.Time{} // every token stops working, as after a key reset
	}
	var vc baiduVerification
	if v != nil {
		vc = *v
		vc.spec.Faults = nil
	}
	s.mu.Unlock()

	if s.preServeFault(w, "baidu", ep, fault) {
		s.countOutcome(vt, ep+":"+fault)
		return
	}
	switch ep {
	case baidu.EndpointGenerate:
		spec := BaiduSpec{PlanID: str("plan_id")}
		c, err := s.CreateBaidu(spec)
		if err != nil {
			s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, err.Error())
			return
		}
		s.serveBody(r.Context(), w, "baidu", ep, fault, s.envelope(map[string]any{"verify_token": c.VerifyToken}))
		return
	case baidu.EndpointSubmit, baidu.EndpointUploadMatch:
		// 001's FAQ (2) and (3): a verify_token not used within its two
		// hours, or whose verification is over, answers Token无效或者已过期;
		// both calls come before the user opens the H5 URL.
		done, finished := vc.completedAt(s.cfg.BaiduVerifyTokenTTL)
		if v == nil || now.After(vc.created.Add(s.cfg.BaiduVerifyTokenTTL)) || (finished && !now.Before(done)) {
			s.countOutcome(vt, ep+":token_invalid")
			s.faceprintError(w, ep, simCodeTokenInvalid, baidu.TokenInvalidMessage)
			return
		}
		if ep == baidu.EndpointUploadMatch {
			if msg := checkMatchImage(body); msg != "" {
				s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: "+msg)
				return
			}
			s.serveBody(r.Context(), w, "baidu", ep, fault, s.envelope(nil))
			return
		}
		if msg := checkSubmit(body); msg != "" {
			s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: "+msg)
			return
		}
		s.mu.Lock()
		v.idName, v.idNo = str("id_name"), str("id_no")
		s.mu.Unlock()
		s.serveBody(r.Context(), w, "baidu", ep, fault, s.envelope(1))
		return
	}
	// Query endpoints.
	if v == nil {
		s.faceprintError(w, ep, simCodeTokenInvalid, baidu.TokenInvalidMessage)
		return
	}
	if s.spoilIfUnused(v, now) {
		vc.spoiled = true
	}
	done, finished := vc.completedAt(s.cfg.BaiduVerifyTokenTTL)
	switch {
	case !finished && now.After(vc.created.Add(s.cfg.BaiduVerifyTokenTTL)),
		finished && now.After(done.Add(s.cfg.BaiduRetention)):
		s.countOutcome(vt, ep+":token_invalid")
		s.faceprintError(w, ep, simCodeTokenInvalid, baidu.TokenInvalidMessage)
		return
	case !finished || now.Before(vc.attemptAt(done, 1)):
		s.countOutcome(vt, ep+":not_finished")
		switch ep {
		case baidu.EndpointGetAll:
			s.serveBody(r.Context(), w, "baidu", ep, fault, s.envelope(map[string]any{"verify_count": 0, "ocr_charge_count": 0, "match_charge_count": 0, "verify_charge_count": 0, "verify_result": []any{}}))
		default:
			s.faceprintError(w, ep, simCodeNotFinished, "verification not finished")
		}
		return
	}
	// Attempts ended by now; the verification succeeded once one passed.
	n := vc.attemptsBy(done, now)
	success := vc.passed(n)
	var result any
	switch ep {
	case baidu.EndpointSimple:
		if !success {
			s.countOutcome(vt, ep+":not_verified")
			s.faceprintError(w, ep, simCodeLivenessFail, "活体检测未通过")
			return
		}
		result = map[string]any{"image": s.mediaURL(vt, "face.jpg")}
	case baidu.EndpointDetail:
		if !success {
			s.countOutcome(vt, ep+":not_verified")
			s.faceprintError(w, ep, simCodeLivenessFail, "活体检测未通过")
			return
		}
		result = s.baiduDetail(&vc, fault == FaultTruncatedBase64)
	case baidu.EndpointStat:
		var env map[string]any
		_ = json.Unmarshal(vendordocs.MustExample("baidu_result_stat.json"), &env)
		result = env["result"]
	case baidu.EndpointMedia:
		result = s.baiduMedia(&vc, now, done)
	case baidu.EndpointGetAll:
		result = s.baiduGetAll(&vc, done, n)
	}
	s.countOutcome(vt, ep+":ok")
	s.serveBody(r.Context(), w, "baidu", ep, fault, s.envelope(result))
}

// checkSubmit checks idcard/submit's body against 001's table: id_name and
// id_no are required strings, certificate_type an optional int from 0 to 5.
// It returns the faulty parameter's name ("" when none).
func checkSubmit(body map[string]json.RawMessage) string {
	for _, k := range []string{"id_name", "id_no"} {
		var v string
		if json.Unmarshal(body[k], &v) != nil || v == "" {
			return k
		}
	}
	if raw, ok := body["certificate_type"]; ok {
		var n int
		if json.Unmarshal(raw, &n) != nil || n < 0 || n > 5 {
			return "certificate_type"
		}
	}
	return ""
}

// matchControls are uploadMatchImage's quality_control and liveness_control
// values (001; NONE when absent).
var matchControls = map[string]bool{"NONE": true, "LOW": true, "NORMAL": true, "HIGH": true}

// checkMatchImage checks uploadMatchImage's body against 001's table: image
// is a base64 string of at most 10 MB once encoded (10 MiB here) of a picture
// under 1920×1080; the controls take NONE, LOW, NORMAL or HIGH. The document
// names no format: the simulator knows JPEG, PNG and GIF, and reads "under
// 1920×1080" as the long side under 1920 and the short side under 1080
// pixels, in either orientation. It returns the faulty parameter's name.
func checkMatchImage(body map[string]json.RawMessage) string {
	var b64 string
	if json.Unmarshal(body["image"], &b64) != nil || b64 == "" || len(b64) > 10<<20 {
		return "image"
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "image"
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return "image"
	}
	long, short := max(cfg.Width, cfg.Height), min(cfg.Width, cfg.Height)
	if long >= 1920 || short >= 1080 {
		return "image: resolution " + strconv.Itoa(cfg.Width) + "x" + strconv.Itoa(cfg.Height) + " (want under 1920*1080)"
	}
	for _, k := range []string{"quality_control", "liveness_control"} {
		if raw, ok := body[k]; ok {
			var v string
			if json.Unmarshal(raw, &v) != nil || !matchControls[v] {
				return k
			}
		}
	}
	return ""
}

// spoilIfUnused marks v spoiled when a query endpoint is called before its
// first attempt ended and while its token can still verify (001: query
// only after the user acted, or the token never takes effect). It reports
// whether v is spoiled.
func (s *Sim) spoilIfUnused(v *baiduVerification, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.spoiled {
		return true
	}
	if now.After(v.created.Add(s.cfg.BaiduVerifyTokenTTL)) {
		return false
	}
	if done, ok := v.completedAt(s.cfg.BaiduVerifyTokenTTL); ok && !now.Before(v.attemptAt(done, 1)) {
		return false
	}
	v.spoiled = true
	v.outcomes["queried_before_use"]++
	return true
}

func (s *Sim) countOutcome(vt, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.baidu[vt]; v != nil {
		v.outcomes[outcome]++
	}
}

func (s *Sim) envelope(result any) []byte {
	return mustJSON(map[string]any{"success": true, "result": result, "log_id": s.logID()})
}

func (s *Sim) mediaURL(vt, file string) string {
	s.mu.Lock()
	base := s.cfg.BaiduPublicURL
	s.mu.Unlock()
	return strings.TrimRight(base, "/") + "/media/" + url.PathEscape(vt) + "/" + file
}

func (s *Sim) baiduDetail(v *baiduVerification, truncate bool) map[string]any {
	var env map[string]any
	_ = json.Unmarshal(vendordocs.MustExample("baidu_result_detail.json"), &env)
	res := env["result"].(map[string]any)
	img := func(side string) string {
		b := base64.StdEncoding.EncodeToString(makeJPEG(s.jpegBase, v.token+"/idcard_"+side, v.spec.ImageBytes))
		if truncate {
			b = b[:len(b)-3]
		}
		return b
	}
	res["idcard_images"] = map[string]any{"front_base64": img("front"), "back_base64": img("back")}
	if v.idName != "" {
		res["idcard_confirm"] = map[string]any{"name": v.idName, "idcard_number": v.idNo}
	}
	res["is_demote"] = false
	return res
}

func (s *Sim) baiduMedia(v *baiduVerification, now, done time.Time) map[string]any {
	out := map[string]any{"processVideo": []string{}, "video": []string{}, "images": []string{}, "extInfo": nil}
	switch v.spec.Media {
	case "process_video":
		out["processVideo"] = []string{s.mediaURL(v.token, "process_video.mp4")}
		imgs := make([]string, 4)
		for i := range imgs {
			imgs[i] = s.mediaURL(v.token, fmt.Sprintf("image%d.jpg", i+1))
		}
		out["images"] = imgs
	case "video":
		out["video"] = []string{s.mediaURL(v.token, "video.mp4")}
	}
	return out
}

// baiduGetAll lists the n attempts ended so far.
func (s *Sim) baiduGetAll(v *baiduVerification, done time.Time, n int) map[string]any {
	var env map[string]any
	_ = json.Unmarshal(vendordocs.MustExample("baidu_result_getall.json"), &env)
	res := env["result"].(map[string]any)
	tmpl := res["verify_result"].([]any)[0].(map[string]any)
	attempts := make([]any, 0, n)
	charged := 0
	for i := 1; i <= n; i++ {
		var a map[string]any
		_ = json.Unmarshal(mustJSON(tmpl), &a)
		at := v.attemptAt(done, i).In(baidu.China)
		ts := fmt.Sprintf("%d-%d-%d %02d:%02d:%02d", at.Year(), at.Month(), at.Day(), at.Hour(), at.Minute(), at.Second())
		passed := v.passed(i)
		a["order"] = i
		a["is_verify_passed"] = passed
		a["verify_time"] = ts
		a["charge_time"] = ts
		a["ocr_charge_time"] = ts
		d := a["verify_detail"].(map[string]any)
		d["face_image"] = s.mediaURL(v.token, fmt.Sprintf("face%d.jpg", i))
		d["verify_log_id"] = s.logID()
		d["risk_level"] = "4"
		d["risk_tag"] = ""
		// 001: liveness_score and spoofing_score are reserved, currently 0.
		d["liveness_score"], d["spoofing_score"] = 0, 0
		if passed {
			a["code"], a["message"] = "0", "核验成功"
			d["score"] = 91.5
			charged++
		} else {
			a["code"], a["message"] = strconv.Itoa(simCodeLivenessFail), "活体检测未通过"
			d["score"] = ""
			a["is_charged"] = false
			a["charge_time"] = ""
		}
		if c, ok := a["idcard_confirm"].(map[string]any); ok {
			if v.idName != "" {
				c["name"], c["idcard_number"] = v.idName, v.idNo
			}
			if imgs, ok := c["idcard_images"].(map[string]any); ok {
				imgs["front_image"] = s.mediaURL(v.token, fmt.Sprintf("front%d.jpg", i))
				imgs["back_image"] = s.mediaURL(v.token, fmt.Sprintf("back%d.jpg", i))
			}
		}
		attempts = append(attempts, a)
	}
	res["verify_result"] = attempts
	res["verify_count"] = n
	res["verify_charge_count"] = charged
	res["match_charge_count"] = 0
	res["ocr_charge_count"] = n
	return res
}

// handleMedia serves the images and videos behind the URLs handed out.
// Media-query links (videos and their images) stop working after
// BaiduMediaRetention; face and ID-card images from getall/simple after
// BaiduRetention. An expired link answers 403 with an object-store error.
func (s *Sim) handleMedia(w http.ResponseWriter, r *http.Request) {
	vt, file := r.PathValue("token"), r.PathValue("file")
	now := s.clk.Now()
	s.mu.Lock()
	v := s.baidu[vt]
	var vc baiduVerification
	if v != nil {
		vc = *v
		v.calls["media"]++
	}
	s.mu.Unlock()
	deny := func(code string, status int, kind string) {
		s.metrics.requests.WithLabelValues("baidu", "media", kind).Inc()
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>\n", code, code)
	}
	if v == nil {
		deny("NoSuchKey", http.StatusNotFound, "not_found")
		return
	}
	done, finished := vc.completedAt(s.cfg.BaiduVerifyTokenTTL)
	isMediaQuery := strings.HasSuffix(file, ".mp4") || strings.HasPrefix(file, "image")
	keep := s.cfg.BaiduRetention
	if isMediaQuery {
		keep = s.cfg.BaiduMediaRetention
	}
	if !finished || now.Before(vc.attemptAt(done, 1)) {
		deny("NoSuchKey", http.StatusNotFound, "not_found")
		return
	}
	if now.After(done.Add(keep)) {
		deny("AccessDenied", http.StatusForbidden, "expired")
		return
	}
	if strings.HasSuffix(file, ".mp4") {
		n := vc.spec.VideoBytes
		w.Header().Set("Content-Type", "video/mp4")
		w.Header().Set("Content-Length", strconv.FormatInt(MP4Size(n), 10))
		s.metrics.requests.WithLabelValues("baidu", "media", "ok").Inc()
		s.metrics.media.WithLabelValues("video").Add(float64(MP4Size(n)))
		_ = writeMP4(w, vt+"/"+file, n)
		return
	}
	if !strings.HasSuffix(file, ".jpg") {
		deny("NoSuchKey", http.StatusNotFound, "not_found")
		return
	}
	b := makeJPEG(s.jpegBase, vt+"/"+file, vc.spec.ImageBytes)
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	s.metrics.requests.WithLabelValues("baidu", "media", "ok").Inc()
	s.metrics.media.WithLabelValues("image").Add(float64(len(b)))
	_, _ = w.Write(b)
}

// deliverBaidu sends the browser's redirect to the success or failure page.
func (s *Sim) deliverBaidu(ctx context.Context, vt string) {
	s.mu.Lock()
	v := s.baidu[vt]
	if v == nil || v.rdDone || v.spoiled {
		s.mu.Unlock()
		return
	}
	v.rdTries++
	target, tries := s.redirectURL(v), v.rdTries
	s.mu.Unlock()
	outcome := s.deliver(ctx, http.MethodGet, target, "", nil, 400)
	s.mu.Lock()
	defer s.mu.Unlock()
	v.rdResult = outcome
	if outcome == "delivered" && v.rdAttempt < v.spec.Attempts {
		// The user retries; the next attempt's landing follows.
		v.rdAttempt++
		v.rdSched = false
		s.scheduleRedirectLocked(v)
	} else if outcome == "delivered" {
		v.rdDone = true
	} else if outcome == "bad_url" || !s.retryLocked("baidu", vt, tries) {
		outcome = "gave_up"
	} else {
		outcome = "retry"
	}
	s.metrics.callbacks.WithLabelValues("baidu", outcome).Inc()
}
