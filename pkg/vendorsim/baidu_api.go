package vendorsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	_ "image/gif" // uploadMatchImage pictures
	_ "image/png"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

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

// faceprintCall is one faceprint API request past its checks: its
// endpoint, body and time; the verification its verify_token names (nil
// when none) with a copy taken under the lock; the fault drawn for it.
type faceprintCall struct {
	ep    string
	now   time.Time
	body  map[string]json.RawMessage
	vt    string
	v     *baiduVerification
	vc    baiduVerification
	fault string
}

// str is the body's value of k as a string (a number in its shortest
// form), or "".
func (c *faceprintCall) str(k string) string {
	var v any
	_ = json.Unmarshal(c.body[k], &v)
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// missingParam names the parameter every call of the endpoint needs when
// the body lacks it: plan_id for generate, verify_token for the others.
func (c *faceprintCall) missingParam() string {
	need := "verify_token"
	if c.ep == baidu.EndpointGenerate {
		need = "plan_id"
	}
	if c.str(need) == "" {
		return need
	}
	return ""
}

func (s *Sim) handleFaceprint(w http.ResponseWriter, r *http.Request) {
	ep := r.PathValue("endpoint")
	if !slices.Contains(baidu.Endpoints, ep) {
		s.platformError(w, "unknown", http.StatusOK, 3, "Unsupported openapi method")
		return
	}
	c := &faceprintCall{ep: ep, now: s.clk.Now()}
	if !s.faceprintAuthorized(w, r, c) {
		return
	}
	var ok bool
	if c.body, ok = s.faceprintBody(w, r, ep); !ok {
		return
	}
	s.countAPICall("baidu", ep)
	if p := c.missingParam(); p != "" {
		s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: "+p)
		return
	}
	release, ok := s.admitFaceprint(w, r, c)
	if !ok {
		return
	}
	defer release()
	if s.preServeFault(w, "baidu", ep, c.fault) {
		s.countOutcome(c.vt, ep+":"+c.fault)
		return
	}
	switch ep {
	case baidu.EndpointGenerate:
		s.serveGenerate(w, r, c)
	case baidu.EndpointSubmit, baidu.EndpointUploadMatch:
		s.serveBeforeUse(w, r, c)
	default:
		s.serveQuery(w, r, c)
	}
}

// faceprintAuthorized answers a call without a valid access_token, or
// whose Content-Type is not JSON, and reports whether it may go on.
func (s *Sim) faceprintAuthorized(w http.ResponseWriter, r *http.Request, c *faceprintCall) bool {
	tok := r.URL.Query().Get("access_token")
	s.mu.Lock()
	exp, ok := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !ok:
		s.platformError(w, c.ep, http.StatusOK, baidu.CodeTokenInvalid, "Access token invalid or no longer valid")
		return false
	case c.now.After(exp):
		s.platformError(w, c.ep, http.StatusOK, baidu.CodeTokenExpired, "Access token expired")
		return false
	}
	// 001, every call: Content-Type为application/json (the header, not only
	// the body's shape). The document gives no code for another type; the
	// simulator answers invalid parameter.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.platformError(w, c.ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: Content-Type, want application/json")
		return false
	}
	return true
}

// faceprintBody decodes a call's JSON object, or answers that it is none.
func (s *Sim) faceprintBody(w http.ResponseWriter, r *http.Request, ep string) (map[string]json.RawMessage, bool) {
	var body map[string]json.RawMessage
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&body); err != nil {
		s.platformError(w, ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: body is not JSON")
		return nil, false
	}
	return body, true
}

// admitFaceprint admits c under the API's rate limit, counts it on its
// verification and draws its fault; a call over the limit is answered (QPS
// limit) and reports false. release ends an admitted call.
func (s *Sim) admitFaceprint(w http.ResponseWriter, r *http.Request, c *faceprintCall) (release func(), ok bool) {
	release, limited := s.admitAPI(r.Context(), "baidu")
	c.vt = c.str("verify_token")
	s.mu.Lock()
	c.v = s.baidu[c.vt]
	if c.v != nil {
		c.v.calls[c.ep]++
	}
	if limited != "" {
		if c.v != nil {
			c.v.outcomes[c.ep+":18"]++
		}
		s.mu.Unlock()
		s.platformError(w, c.ep, http.StatusOK, baidu.CodeQPSLimit, "Open api qps request limit reached")
		return nil, false
	}
	var perV *[]string
	if c.v != nil {
		perV = &c.v.spec.Faults
	}
	c.fault = s.drawFaultLocked("baidu", perV)
	if c.fault == FaultAuth {
		s.tokens = map[string]time.Time{} // every token stops working, as after a key reset
	}
	if c.v != nil {
		c.vc = *c.v
		c.vc.spec.Faults = nil
	}
	s.mu.Unlock()
	return release, true
}

// serveGenerate creates a verification, as verifyToken/generate does.
func (s *Sim) serveGenerate(w http.ResponseWriter, r *http.Request, c *faceprintCall) {
	created, err := s.CreateBaidu(BaiduSpec{PlanID: c.str("plan_id")})
	if err != nil {
		s.platformError(w, c.ep, http.StatusOK, baidu.CodeInvalidParam, err.Error())
		return
	}
	s.serveBody(r.Context(), w, "baidu", c.ep, c.fault, s.envelope(map[string]any{"verify_token": created.VerifyToken}))
}

// serveBeforeUse answers idcard/submit and uploadMatchImage.
func (s *Sim) serveBeforeUse(w http.ResponseWriter, r *http.Request, c *faceprintCall) {
	// 001's FAQ (2) and (3): a verify_token not used within its two
	// hours, or whose verification is over, answers Token无效或者已过期;
	// both calls come before the user opens the H5 URL.
	done, finished := c.vc.completedAt(s.cfg.BaiduVerifyTokenTTL)
	if c.v == nil || c.now.After(c.vc.created.Add(s.cfg.BaiduVerifyTokenTTL)) || (finished && !c.now.Before(done)) {
		s.countOutcome(c.vt, c.ep+":token_invalid")
		s.faceprintError(w, c.ep, simCodeTokenInvalid, baidu.TokenInvalidMessage)
		return
	}
	if c.ep == baidu.EndpointUploadMatch {
		if msg := checkMatchImage(c.body); msg != "" {
			s.platformError(w, c.ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: "+msg)
			return
		}
		s.serveBody(r.Context(), w, "baidu", c.ep, c.fault, s.envelope(nil))
		return
	}
	if msg := checkSubmit(c.body); msg != "" {
		s.platformError(w, c.ep, http.StatusOK, baidu.CodeInvalidParam, "Invalid parameter: "+msg)
		return
	}
	s.mu.Lock()
	c.v.idName, c.v.idNo = c.str("id_name"), c.str("id_no")
	s.mu.Unlock()
	s.serveBody(r.Context(), w, "baidu", c.ep, c.fault, s.envelope(1))
}

// serveQuery answers the query endpoints (simple, detail, stat, media,
// getall).
func (s *Sim) serveQuery(w http.ResponseWriter, r *http.Request, c *faceprintCall) {
	if c.v == nil {
		s.faceprintError(w, c.ep, simCodeTokenInvalid, baidu.TokenInvalidMessage)
		return
	}
	if s.spoilIfUnused(c.v, c.now) {
		c.vc.spoiled = true
	}
	done, finished := c.vc.completedAt(s.cfg.BaiduVerifyTokenTTL)
	if !s.queryReady(w, r, c, done, finished) {
		return
	}
	result, ok := s.queryResult(w, c, done)
	if !ok {
		return
	}
	s.countOutcome(c.vt, c.ep+":ok")
	s.serveBody(r.Context(), w, "baidu", c.ep, c.fault, s.envelope(result))
}

// queryReady answers a query whose token is no longer valid, or whose
// verification has no ended attempt yet, and reports whether results can
// be given.
func (s *Sim) queryReady(w http.ResponseWriter, r *http.Request, c *faceprintCall, done time.Time, finished bool) bool {
	switch {
	case !finished && c.now.After(c.vc.created.Add(s.cfg.BaiduVerifyTokenTTL)),
		finished && c.now.After(done.Add(s.cfg.BaiduRetention)):
		s.countOutcome(c.vt, c.ep+":token_invalid")
		s.faceprintError(w, c.ep, simCodeTokenInvalid, baidu.TokenInvalidMessage)
		return false
	case !finished || c.now.Before(c.vc.attemptAt(done, 1)):
		s.countOutcome(c.vt, c.ep+":not_finished")
		switch c.ep {
		case baidu.EndpointGetAll:
			s.serveBody(r.Context(), w, "baidu", c.ep, c.fault, s.envelope(map[string]any{"verify_count": 0, "ocr_charge_count": 0, "match_charge_count": 0, "verify_charge_count": 0, "verify_result": []any{}}))
		default:
			s.faceprintError(w, c.ep, simCodeNotFinished, "verification not finished")
		}
		return false
	}
	return true
}

// queryResult is a query's result once attempts ended; simple and detail
// of a verification no attempt of which passed are answered with the
// liveness failure (false).
func (s *Sim) queryResult(w http.ResponseWriter, c *faceprintCall, done time.Time) (any, bool) {
	// Attempts ended by now; the verification succeeded once one passed.
	n := c.vc.attemptsBy(done, c.now)
	success := c.vc.passed(n)
	switch c.ep {
	case baidu.EndpointSimple, baidu.EndpointDetail:
		if !success {
			s.countOutcome(c.vt, c.ep+":not_verified")
			s.faceprintError(w, c.ep, simCodeLivenessFail, "活体检测未通过")
			return nil, false
		}
		if c.ep == baidu.EndpointSimple {
			return map[string]any{"image": s.mediaURL(c.vt, "face.jpg")}, true
		}
		return s.baiduDetail(&c.vc, c.fault == FaultTruncatedBase64), true
	case baidu.EndpointStat:
		var env map[string]any
		_ = json.Unmarshal(vendordocs.MustExample("baidu_result_stat.json"), &env)
		return env["result"], true
	case baidu.EndpointMedia:
		return s.baiduMedia(&c.vc, c.now, done), true
	case baidu.EndpointGetAll:
		return s.baiduGetAll(&c.vc, done, n), true
	}
	return nil, true
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
