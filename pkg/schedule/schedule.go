// Package schedule decides, for one verification, when to call which vendor
// endpoint and when its harvest is over. It is pure: state in, decision out,
// time injected, so every rule is tested without a clock or a network.
package schedule

import (
	"fmt"
	"slices"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
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
	// Update, when non-nil, is the state the action rests on, changed by
	// the passing of time (Baidu's media window closed: media/query is
	// given up, with the reason): whoever owns the state replaces it with
	// Update and stores it before acting.
	Update *State
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

// Next decides what to do at now. It does not change s: a change the
// decision rests on comes as Action.Update.
func (p Policy) Next(s *State, now time.Time) Action {
	if a, ok := p.waiting(s, now); ok {
		return a
	}
	if !now.Before(p.Deadline(s)) {
		if s.Vendor == contract.Baidu && s.CompletedAt != nil && p.BaiduMedia && !s.done(baidu.EndpointMedia) {
			// Media links are gone; the results themselves live longer.
			u := s.Clone()
			u.Done = append(u.Done, baidu.EndpointMedia)
			u.LastError = "media window closed before result/media/query could be called"
			a := p.Next(u, now)
			a.Update = u
			return a
		}
		return Action{Close: p.windowClosed(s)}
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

// Plan is Next for a caller that owns s: the action's update is applied
// to s.
func (p Policy) Plan(s *State, now time.Time) Action {
	a := p.Next(s, now)
	if a.Update != nil {
		*s = *a.Update
		a.Update = nil
	}
	return a
}

// waiting is the action of a state that is closed, unregistered or not due
// at now; false when its calls or its window decide.
func (p Policy) waiting(s *State, now time.Time) (Action, bool) {
	switch {
	case s.Closing != nil:
		return Action{Close: &Close{s.Closing.Outcome, s.Closing.Reason}}, true
	case s.Unregistered:
		if at := p.UnregisteredUntil(s); now.Before(at) {
			return Action{Wait: at}, true
		}
		return Action{Discard: true}, true
	case now.Before(s.NextAt):
		return Action{Wait: s.NextAt}, true
	}
	return Action{}, false
}

// windowClosed is the terminal of a verification whose window closed.
func (p Policy) windowClosed(s *State) *Close {
	if len(s.Responses) > 0 && s.LastError != "" {
		return &Close{contract.OutcomeFailed, "window closed after failures: " + s.LastError}
	}
	reason := "window closed before a call could be made"
	if s.LastError != "" {
		reason += "; last error: " + s.LastError
	}
	return &Close{contract.OutcomeExpired, reason}
}

// Clone returns a copy of s that shares nothing with it that a change
// could write through (its slices are copied).
func (s *State) Clone() *State {
	c := *s
	c.Asked, c.Wanted, c.Responses, c.Done = slices.Clone(s.Asked), slices.Clone(s.Wanted), slices.Clone(s.Responses), slices.Clone(s.Done)
	return &c
}
