package vendorsim

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
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
