// Package schedule decides, for one verification, when to call which vendor
// endpoint and when its harvest is over. It is pure: state in, decision out,
// time injected, so every rule is tested without a clock or a network.
package schedule

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Policy holds the vendors' windows and budgets, and the retry schedule.
// Zero values take the documents' values (see Defaults).
type Policy struct {
	MegviiRetention  time.Duration // get_result answers this long after the token is issued (24 h)
	MegviiCallBudget int           // get_result calls that return data (1)
	MegviiLastChance time.Duration // without a final callback, call this long before the window closes (30 min)

	BaiduTokenWindow    time.Duration // a verify_token starts a verification within this (2 h)
	BaiduRetention      time.Duration // query endpoints answer this long after verification (72 h)
	BaiduMediaRetention time.Duration // media URLs live this long after verification (24 h)
	BaiduPollDelay      time.Duration // without a completion, first poll this long after the token window (5 min)
	BaiduDetail         bool          // also call result/detail (base64 ID-card images)
	BaiduMedia          bool          // also call result/media/query (videos and images)
	// BaiduQPSLimitGrace: error 18 (QPS limit) is rate limiting at first;
	// answered for this long without another answer in between it is an
	// account fault (001's FAQ: 持续返回错误码18 means the paid APIs are not
	// enabled or their free quota is spent) and pauses the vendor (5 min).
	BaiduQPSLimitGrace time.Duration
	// BaiduTokenInvalidFaults: "Token无效或者已过期" inside a token's data
	// window is what 001 answers for a verify_token used with an
	// access_token of another application (the client has already tried a
	// fresh one). One verification answered so is retried with back-off;
	// this many verifications in a row answered so, with no other Baidu
	// answer in between, are an account fault: the vendor is paused (3).
	BaiduTokenInvalidFaults int
	// TokenInvalidRun is shared by every copy of the policy (Defaults
	// makes one): the verifications of the current run of such answers.
	// Nil: none is counted, no pause.
	TokenInvalidRun *TokenInvalidRun

	RetryMin time.Duration // first retry after a failure (5 s), doubling
	RetryMax time.Duration // longest pause between retries (5 min)
	// RateLimitRetry is the pause after a rate-limit answer (500 ms): the
	// adaptive limit, not the verification, absorbs the overload.
	RateLimitRetry time.Duration
}

// Defaults returns the documents' values: the strictest reading (one day,
// one call) for Megvii.
func Defaults() Policy {
	return Policy{
		MegviiRetention: 24 * time.Hour, MegviiCallBudget: 1, MegviiLastChance: 30 * time.Minute,
		BaiduTokenWindow: 2 * time.Hour, BaiduRetention: 72 * time.Hour, BaiduMediaRetention: 24 * time.Hour, BaiduPollDelay: 5 * time.Minute,
		BaiduDetail: true, BaiduMedia: true, BaiduQPSLimitGrace: 5 * time.Minute, BaiduTokenInvalidFaults: 3, TokenInvalidRun: &TokenInvalidRun{},
		RetryMin: 5 * time.Second, RetryMax: 5 * time.Minute, RateLimitRetry: 500 * time.Millisecond,
	}
}

// Validate refuses policies that cannot work.
func (p Policy) Validate() error {
	switch {
	case p.MegviiRetention <= 0 || p.BaiduTokenWindow <= 0 || p.BaiduRetention <= 0 || p.BaiduMediaRetention <= 0:
		return fmt.Errorf("retention windows must be positive")
	case p.MegviiCallBudget < 1:
		return fmt.Errorf("the Megvii call budget must be at least 1")
	case p.MegviiLastChance <= 0 || p.MegviiLastChance >= p.MegviiRetention:
		return fmt.Errorf("the Megvii last-chance margin must be positive and shorter than the retention window")
	case p.RetryMin <= 0 || p.RetryMax < p.RetryMin:
		return fmt.Errorf("retry back-off: want 0 < min <= max")
	case p.BaiduQPSLimitGrace < 0 || p.BaiduTokenInvalidFaults < 0:
		return fmt.Errorf("the Baidu error-18 grace and the token-invalid count must not be negative")
	}
	return nil
}

// State is one pending verification, as kept in the state topic.
type State struct {
	Vendor   contract.Vendor `json:"vendor"`
	ID       string          `json:"id"`
	BizNo    string          `json:"biz_no,omitempty"`
	IssuedAt *time.Time      `json:"issued_at,omitempty"` // from a token registration
	// Owner is the caller (contract.Event.Caller) of the first token
	// registration: another caller's registrations and landings are
	// ignored (Foreign).
	Owner     string    `json:"owner,omitempty"`
	FirstSeen time.Time `json:"first_seen"` // the first event's receipt
	// FlowStatus is the vendor's: Megvii's callback or get_result status;
	// Baidu's success or failure from getall's attempts, never a landing.
	FlowStatus string `json:"flow_status,omitempty"`
	// Landing is the Baidu landing the browser opened last, success or
	// failure: an untrusted hint (a user whose check failed can open
	// /success), a trigger and a completion time, never the outcome.
	Landing string `json:"landing,omitempty"`
	// Unregistered marks a Baidu verification known only from a landing: no
	// token registration has arrived, so nothing is called (law 8) until one
	// does. States written before this field existed read as registered.
	Unregistered bool       `json:"unregistered,omitempty"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"` // Megvii final callback, Baidu completion
	NextAt       time.Time  `json:"next_at"`
	Failures     int        `json:"failures,omitempty"` // consecutive retryable failures
	Spent        int        `json:"spent,omitempty"`    // Megvii get_result answers recorded (the budget used)
	// Procedure is Megvii's liveness procedure_type (video, still, selfie,
	// flash), from the signed callback or a get_result answer, inferred from
	// the details' shape when the field is absent (megvii.ProcedureType).
	Procedure string `json:"procedure,omitempty"`
	// Asked are the return_image values of the served get_result calls.
	Asked []int `json:"asked,omitempty"`
	// Wanted are the return_image values of the images the flow produced
	// that the first served answer lacked (NextReturnImage).
	Wanted    []int    `json:"wanted,omitempty"`
	Attempts  int      `json:"attempts,omitempty"` // calls started, for response ids
	Intent    *Intent  `json:"intent,omitempty"`
	Responses []string `json:"responses,omitempty"`
	Done      []string `json:"done,omitempty"` // Baidu endpoints answered for good
	LastError string   `json:"last_error,omitempty"`
	// Polls counts Baidu getall answers that listed attempts, none passed,
	// while the token window was open: the user may still retry (001: with
	// "URL stays valid on failure" a token carries several attempts).
	Polls int `json:"polls,omitempty"`
	// QPSLimitedSince is when the current run of Baidu error-18 answers
	// began (nil after any other answer).
	QPSLimitedSince *time.Time `json:"qps_limited_since,omitempty"`
	// TokenInvalid counts "Token无效或者已过期" answers taken for account
	// faults (Policy.BaiduTokenInvalidFaults).
	TokenInvalid int `json:"token_invalid,omitempty"`
	// Closing is the terminal decision, stored before the terminal envelope
	// is published so that a restart republishes the same envelope rather
	// than deciding (or calling) again.
	Closing        *Closing `json:"closing,omitempty"`
	LastWindowLeft float64  `json:"last_window_left,omitempty"`
}

// Intent records that a limited call is about to be made: if the process dies
// before the answer is recorded, whoever restores the state checks the raw
// topic from RawOffset on for the answer before deciding to call again.
type Intent struct {
	Attempt      int       `json:"attempt"`
	At           time.Time `json:"at"`
	RawPartition int       `json:"raw_partition"`
	RawOffset    int64     `json:"raw_offset"`
}

// Key returns the verification's message key.
func (s *State) Key() string { return contract.Key(s.Vendor, s.ID) }

func (s *State) windowStart() time.Time {
	if s.IssuedAt != nil && s.IssuedAt.Before(s.FirstSeen) {
		return *s.IssuedAt
	}
	return s.FirstSeen
}

// Deadline is when the data this harvest is after stops being available: the
// order of due work, earliest first.
func (p Policy) Deadline(s *State) time.Time {
	if s.Vendor == contract.Megvii {
		return s.windowStart().Add(p.MegviiRetention)
	}
	if s.CompletedAt != nil {
		if p.BaiduMedia && !s.done(baidu.EndpointMedia) {
			return s.CompletedAt.Add(p.BaiduMediaRetention)
		}
		return s.CompletedAt.Add(p.BaiduRetention)
	}
	// Not known to be complete: the latest completion is the end of the token
	// window, and its results live three days after.
	return s.windowStart().Add(p.BaiduTokenWindow + p.BaiduRetention)
}

func (s *State) done(ep string) bool {
	for _, d := range s.Done {
		if d == ep {
			return true
		}
	}
	return false
}

// Foreign reports whether ev is a token registration by another caller
// than the one whose registration came first, or a Baidu landing whose
// URL was given to another caller (a landing that names none, from a URL
// signed before landings named their caller, is not): Apply ignores it
// (the caller counts it).
func (s *State) Foreign(typ string, ev contract.Event) bool {
	if s == nil || s.Owner == "" || ev.Caller == s.Owner {
		return false
	}
	return typ == contract.TypeTokenRegistered || (typ == contract.TypeBaiduCompletion && ev.Caller != "")
}

// Apply merges an event into the state (creating it when nil) and returns it
// with NextAt recomputed. The first registration wins: a later one never
// moves issued_at earlier nor replaces biz_no, and another caller's
// registration or landing changes nothing (Foreign).
func (p Policy) Apply(s *State, typ string, ev contract.Event) *State {
	if s.Foreign(typ, ev) {
		return s
	}
	if s == nil {
		s = &State{Vendor: ev.Vendor, ID: ev.VerificationID, FirstSeen: ev.ReceivedAt,
			Unregistered: ev.Vendor == contract.Baidu && typ != contract.TypeTokenRegistered}
	}
	if ev.ReceivedAt.Before(s.FirstSeen) {
		s.FirstSeen = ev.ReceivedAt
	}
	if ev.BizNo != "" && (typ != contract.TypeTokenRegistered || s.BizNo == "") {
		s.BizNo = ev.BizNo
	}
	switch typ {
	case contract.TypeTokenRegistered:
		s.Unregistered = false
		if s.Owner == "" {
			s.Owner = ev.Caller
		}
		if ev.IssuedAt != nil && s.IssuedAt == nil {
			t := *ev.IssuedAt
			s.IssuedAt = &t
		}
	case contract.TypeMegviiCallback:
		if ev.Data != "" {
			// The signed callback is recorded as a response (the harvester
			// publishes it before this state is stored), so the terminal
			// names it and the archiver keeps it as evidence.
			id := contract.CallbackResponseID(ev.Vendor, ev.VerificationID, ev.Data)
			if !slices.Contains(s.Responses, id) {
				s.Responses = append(s.Responses, id)
			}
		}
		st := megvii.Status(ev.Status)
		if st.Final() || s.CompletedAt == nil {
			s.FlowStatus = ev.Status
		}
		if pt := megvii.ProcedureType([]byte(ev.Data)); pt != "" {
			s.Procedure = pt
		}
		if st.Final() && s.CompletedAt == nil {
			t := ev.ReceivedAt
			s.CompletedAt = &t
		}
	case contract.TypeBaiduCompletion:
		// Which page the browser opened is the user's choice: kept as a
		// hint, never as the flow status (baiduSuccess sets that).
		if ev.Status == LandingSuccess || ev.Status == LandingFailure {
			s.Landing = ev.Status
		}
		if s.CompletedAt == nil {
			t := ev.ReceivedAt
			s.CompletedAt = &t
		}
	}
	if s.Failures == 0 {
		s.NextAt = p.firstCall(s)
	}
	return s
}

// The Baidu landings a State keeps as hints.
const (
	LandingSuccess = "success"
	LandingFailure = "failure"
)

// UnregisteredUntil is how long a verification known only from a landing
// waits for its registration: until Baidu's results retention has passed
// since the landing (or since the latest completion the token window
// allows). After that no registration could harvest anything, and the state
// is discarded without a call or a terminal.
func (p Policy) UnregisteredUntil(s *State) time.Time {
	if s.CompletedAt != nil {
		return s.CompletedAt.Add(p.BaiduRetention)
	}
	return s.windowStart().Add(p.BaiduTokenWindow + p.BaiduRetention)
}

// firstCall is when the first call is due, before any failure.
func (p Policy) firstCall(s *State) time.Time {
	if s.Unregistered {
		return p.UnregisteredUntil(s)
	}
	if s.Vendor == contract.Megvii {
		if s.CompletedAt != nil {
			return *s.CompletedAt
		}
		// Never earlier: the budget would be spent on an unfinished flow.
		return p.Deadline(s).Add(-p.MegviiLastChance)
	}
	if s.CompletedAt != nil {
		return *s.CompletedAt
	}
	return s.windowStart().Add(p.BaiduTokenWindow + p.BaiduPollDelay)
}

// Action is what to do for a verification now.
type Action struct {
	Wait  time.Time // non-zero: nothing to do before then
	Calls []string  // endpoints to call now, in order
	Close *Close    // non-nil: the harvest is over
	// Discard: a verification nobody registered can no longer be
	// harvested; its state is deleted with no call and no terminal.
	Discard bool
}

// Close is a terminal decision.
type Close struct {
	Outcome string
	Reason  string
}

// Closing is a stored terminal decision.
type Closing struct {
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
}

// Plan decides what to do at now.
func (p Policy) Plan(s *State, now time.Time) Action {
	if s.Closing != nil {
		return Action{Close: &Close{s.Closing.Outcome, s.Closing.Reason}}
	}
	if s.Unregistered {
		if at := p.UnregisteredUntil(s); now.Before(at) {
			return Action{Wait: at}
		}
		return Action{Discard: true}
	}
	if now.Before(s.NextAt) {
		return Action{Wait: s.NextAt}
	}
	deadline := p.Deadline(s)
	if !now.Before(deadline) {
		if s.Vendor == contract.Baidu && s.CompletedAt != nil && p.BaiduMedia && !s.done(baidu.EndpointMedia) {
			// Media links are gone; the results themselves live longer.
			s.Done = append(s.Done, baidu.EndpointMedia)
			s.LastError = "media window closed before result/media/query could be called"
			return p.Plan(s, now)
		}
		if len(s.Responses) > 0 && s.LastError != "" {
			return Action{Close: &Close{contract.OutcomeFailed, "window closed after failures: " + s.LastError}}
		}
		reason := "window closed before a call could be made"
		if s.LastError != "" {
			reason += "; last error: " + s.LastError
		}
		return Action{Close: &Close{contract.OutcomeExpired, reason}}
	}
	if s.Vendor == contract.Megvii {
		return Action{Calls: []string{megvii.EndpointGetResult}}
	}
	calls := []string{}
	for _, ep := range []string{baidu.EndpointGetAll, baidu.EndpointDetail, baidu.EndpointMedia} {
		if (ep == baidu.EndpointDetail && !p.BaiduDetail) || (ep == baidu.EndpointMedia && !p.BaiduMedia) || s.done(ep) {
			continue
		}
		calls = append(calls, ep)
	}
	if len(calls) == 0 {
		return Action{Close: &Close{Outcome: contract.OutcomeHarvested}}
	}
	return Action{Calls: calls}
}

// Result is what one call produced, as the harvester saw it.
type Result struct {
	Endpoint   string
	Class      vendorerr.Class // Unknown: success
	Recorded   bool            // a response was published (a body came back)
	ResponseID string
	Served     bool // Megvii: an HTTP 200 answer (the budget is spent)
	// ReturnImage (Megvii) is the return_image value the call asked for.
	ReturnImage int
	// Missing (Megvii, a served answer) are the return_image values of the
	// images the flow produced (its result says which) that the answer
	// lacks (megvii.MissingImages).
	Missing []int
	Code    string // the vendor's error code, when it gave one
	Message string
	// Baidu getall only: attempts found, and when the last one finished.
	Attempts     int
	LastVerified *time.Time
	AnyPassed    bool
}

// Outcome folds a call's result into the state. It returns a Close when the
// harvest is over, and whether the vendor must be paused (account faults).
func (p Policy) Outcome(s *State, r Result, now time.Time, jitter func(key string, n int) time.Duration) (close *Close, pause bool) {
	if r.Recorded {
		s.Responses = append(s.Responses, r.ResponseID)
		s.LastWindowLeft = p.Deadline(s).Sub(now).Seconds()
	}
	if r.Served {
		s.Spent++
		if len(s.Asked) == 0 && r.Class == vendorerr.Unknown {
			s.Wanted = slices.Clone(r.Missing)
		}
		if r.ReturnImage != 0 && !slices.Contains(s.Asked, r.ReturnImage) {
			s.Asked = append(s.Asked, r.ReturnImage)
		}
	}
	if r.Class != vendorerr.RateLimited {
		s.QPSLimitedSince = nil
	}
	switch r.Class {
	case vendorerr.Unknown:
		s.Failures, s.LastError = 0, ""
		if s.Vendor == contract.Megvii {
			// Images come only with status OK (000); a budget above one asks
			// for what the answer of 4 did not return.
			if _, more := NextReturnImage(s); more && s.Spent < p.MegviiCallBudget && megvii.Status(s.FlowStatus) == megvii.StatusOK {
				s.NextAt = now
				return nil, false
			}
			if st := megvii.Status(s.FlowStatus); r.Served && (st == megvii.StatusNotStarted || st == megvii.StatusProcessing) {
				// The last chance found the flow unfinished (000: NOT_STARTED,
				// never begun; PROCESSING, under way, no result fields): the
				// user never finished. The answer is archived, the flow
				// status kept.
				return &Close{contract.OutcomeNotVerified, "the user never finished: get_result's last-chance answer has status " + string(st)}, false
			}
			return &Close{Outcome: contract.OutcomeHarvested}, false
		}
		p.TokenInvalidRun.reset()
		return p.baiduSuccess(s, r, now), false
	case vendorerr.NotFound:
		return &Close{contract.OutcomeNotFound, r.Message}, false
	case vendorerr.Destroyed:
		if s.Vendor == contract.Baidu {
			if p.inDataWindow(s, now) {
				// Inside the data window the token cannot have expired: 001
				// gives the same answer for a verify_token used with another
				// application's access_token. Not a verdict: retried; an
				// account fault when it persists across verifications.
				s.TokenInvalid++
				if n := p.TokenInvalidRun.add(s.Key()); p.BaiduTokenInvalidFaults > 0 && n >= p.BaiduTokenInvalidFaults {
					s.LastError = fmt.Sprintf("account fault: %d verifications in a row answered %q inside their data windows, also with a fresh access_token: are the keys those of the application that generated the verify_tokens? (001's FAQ) %s",
						n, baidu.TokenInvalidMessage, r.Message)
					s.NextAt = now
					return nil, true
				}
				p.retryLater(s, now, jitter, fmt.Sprintf("%s inside the data window, also with a fresh access_token (%d times): an expired token and another application's access_token get the same answer (001's FAQ); retrying: %s",
					r.Endpoint, s.TokenInvalid, r.Message))
				return nil, false
			}
			if s.CompletedAt == nil {
				// After the token window with no completion and no other
				// answer: an unused token and a mismatched access_token get
				// the same message, so nothing says whether the user verified.
				return &Close{contract.OutcomeLost, "the vendor answered " + r.Message + " after the token window and nothing else: an unused token and another application's access_token get the same answer (001's FAQ), so whether a verification happened is unknown"}, false
			}
			if r.Endpoint == baidu.EndpointMedia || r.Endpoint == baidu.EndpointDetail {
				s.Done = append(s.Done, r.Endpoint)
				s.NextAt = now
				return nil, false
			}
		}
		return &Close{contract.OutcomeLost, "the vendor destroyed the data: " + r.Message}, false
	case vendorerr.NotVerified:
		if s.Vendor == contract.Baidu && r.Endpoint == baidu.EndpointGetAll && now.Before(s.windowStart().Add(p.BaiduTokenWindow)) {
			// A refusal the documents do not name (222xxx, 223xxx) while
			// the token can still verify: the user may try again, so
			// getall is polled as after failed attempts.
			s.LastError = r.Message
			p.pollAgain(s, now)
			return nil, false
		}
		s.Done = append(s.Done, r.Endpoint)
		s.NextAt = now
		return nil, false
	case vendorerr.Account:
		s.LastError = r.Message
		s.NextAt = now
		return nil, true
	}
	if r.Class == vendorerr.RateLimited {
		s.LastError = r.Message
		if s.Vendor == contract.Baidu && r.Code == strconv.Itoa(baidu.CodeQPSLimit) && p.BaiduQPSLimitGrace > 0 {
			if s.QPSLimitedSince == nil {
				t := now
				s.QPSLimitedSince = &t
			} else if d := now.Sub(*s.QPSLimitedSince); d >= p.BaiduQPSLimitGrace {
				s.LastError = fmt.Sprintf("error 18 answered for %s: the paid APIs the H5 plan depends on (人脸实名认证V4, 人脸对比V4) are not enabled or their free quota is spent (document 001): %s",
					d.Round(time.Second), r.Message)
				s.NextAt = now
				return nil, true
			}
		}
		wait := p.RateLimitRetry
		if wait <= 0 {
			wait = 500 * time.Millisecond
		}
		if jitter != nil {
			wait += jitter(s.Key(), s.Attempts) * wait / max(p.RetryMin, 1)
		}
		s.NextAt = now.Add(wait)
		return nil, false
	}
	// Retryable, or a fault on our side: try again later, within the window.
	if s.Vendor == contract.Megvii && s.Spent >= p.MegviiCallBudget {
		s.LastError = r.Message
		return &Close{contract.OutcomeFailed, "the one-shot answer was unusable and the call budget is spent: " + r.Message}, false
	}
	p.retryLater(s, now, jitter, r.Message)
	return nil, false
}

// retryLater schedules the next try after a failure, backing off, within
// the window.
func (p Policy) retryLater(s *State, now time.Time, jitter func(key string, n int) time.Duration, why string) {
	s.LastError = why
	s.Failures++
	backoff := p.RetryMin << min(s.Failures-1, 20)
	if backoff > p.RetryMax || backoff <= 0 {
		backoff = p.RetryMax
	}
	if jitter != nil {
		backoff += jitter(s.Key(), s.Failures)
	}
	next := now.Add(backoff)
	if d := p.Deadline(s); next.After(d) {
		next = d.Add(-time.Second) // one more try just before the window closes
		if !next.After(now) {
			next = d
		}
	}
	s.NextAt = next
}

// TokenInvalidRun counts the Baidu verifications answered "Token无效或者已过期"
// inside their data windows since the last other Baidu answer (Policy.
// BaiduTokenInvalidFaults). Safe for concurrent use; nil counts nothing.
type TokenInvalidRun struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (r *TokenInvalidRun) add(key string) int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = map[string]bool{}
	}
	if len(r.ids) < 1024 { // bounded: the count only needs to reach the threshold
		r.ids[key] = true
	}
	return len(r.ids)
}

func (r *TokenInvalidRun) reset() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.ids)
}

func (p Policy) baiduSuccess(s *State, r Result, now time.Time) *Close {
	if r.Endpoint == baidu.EndpointGetAll {
		if r.Attempts == 0 {
			if !now.Before(s.windowStart().Add(p.BaiduTokenWindow)) {
				return &Close{contract.OutcomeNotVerified, "no verification attempt within the token window"}
			}
			s.NextAt = s.windowStart().Add(p.BaiduTokenWindow + p.BaiduPollDelay)
			return nil
		}
		if s.CompletedAt == nil {
			t := now
			if r.LastVerified != nil {
				t = *r.LastVerified
			}
			s.CompletedAt = &t
		}
		// The verdict is the vendor's: getall lists every attempt.
		s.FlowStatus = LandingFailure
		if r.AnyPassed {
			s.FlowStatus = LandingSuccess
		}
		if windowEnd := s.windowStart().Add(p.BaiduTokenWindow); !r.AnyPassed && now.Before(windowEnd) {
			// Failed attempts only, and the token can still verify: the
			// user may retry (001: 用户核验失败后多次重试). Poll again,
			// backing off, and once more after the token window; a landing
			// makes it due at once. detail and media wait for the last
			// attempt.
			p.pollAgain(s, now)
			return nil
		}
		if !r.AnyPassed && !s.done(baidu.EndpointDetail) {
			s.Done = append(s.Done, baidu.EndpointDetail) // detail answers only for a success
		}
	}
	s.Done = append(s.Done, r.Endpoint)
	s.NextAt = now
	return nil
}

// NextReturnImage is the return_image value of s's next get_result call,
// and whether there is one worth the call budget. The first call asks for 4:
// 000 and 002 say 需要返回所有图像 (return all images). Only when an answer of
// 4 lacked images the flow produced (Result.Missing, kept in s.Wanted) does
// a later call, budget allowing, ask for each of them by its own value (1,
// 2, 3, 5 or 6), each value once.
func NextReturnImage(s *State) (int, bool) {
	all := int(megvii.ReturnImageAll)
	if len(s.Asked) == 0 {
		return all, true
	}
	for _, v := range s.Wanted {
		if !slices.Contains(s.Asked, v) {
			return v, true
		}
	}
	return all, false
}

// pollAgain schedules the next getall of a token that can still verify:
// backing off, and once more after the token window; a landing makes it due
// at once.
func (p Policy) pollAgain(s *State, now time.Time) {
	s.Polls++
	next := now.Add(p.BaiduPollDelay << min(s.Polls-1, 10))
	if last := s.windowStart().Add(p.BaiduTokenWindow + p.BaiduPollDelay); next.After(last) || next.Before(now) {
		next = last
	}
	s.NextAt = next
}

// inDataWindow reports whether a Baidu token's results must still be
// answered at now: three days after its completion; before any completion is
// known, until its token window ends (after that, 001's "Token无效或者已过期"
// is the unused token's).
func (p Policy) inDataWindow(s *State, now time.Time) bool {
	if s.CompletedAt != nil {
		return now.Before(s.CompletedAt.Add(p.BaiduRetention))
	}
	return now.Before(s.windowStart().Add(p.BaiduTokenWindow))
}

// Jitter is a deterministic jitter of up to a fifth of RetryMin, from the key
// and the failure count: replicas spread out, tests stay repeatable.
func (p Policy) Jitter(key string, n int) time.Duration {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", key, n)
	span := int64(p.RetryMin / 5)
	if span <= 0 {
		return 0
	}
	return time.Duration(int64(h.Sum64() % uint64(span)))
}
