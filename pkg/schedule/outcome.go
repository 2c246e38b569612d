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

// Jitterer is a deterministic jitter by key and count (Policy.Jitter; nil:
// none).
type Jitterer func(key string, n int) time.Duration

// Decision is what a call's result does to a verification: the state it
// leaves (State), whether the harvest is over (Close) and whether the
// vendor must be paused (Pause: an account fault). It is a value: Decide
// computes it without changing the state it starts from, and the state's
// owner applies it (Apply) and stores it.
type Decision struct {
	State State
	Close *Close
	Pause bool
}

// Apply makes s the decision's state.
func (d Decision) Apply(s *State) { *s = d.State }

// Decide returns what r does to s at now, one function per class of
// result; s is not changed. Only the count of Baidu token-invalid answers
// across verifications (Policy.TokenInvalidRun) is kept outside the state.
func (p Policy) Decide(s *State, r Result, now time.Time, jitter Jitterer) Decision {
	n := p.recorded(*s.Clone(), r, now)
	switch r.Class {
	case vendorerr.Unknown:
		return p.onSuccess(n, r, now)
	case vendorerr.NotFound:
		return Decision{State: n, Close: &Close{contract.OutcomeNotFound, r.Message}}
	case vendorerr.Destroyed:
		return p.onDestroyed(n, r, now, jitter)
	case vendorerr.NotVerified:
		return p.onNotVerified(n, r, now)
	case vendorerr.Account:
		n.LastError, n.NextAt = r.Message, now
		return Decision{State: n, Pause: true}
	case vendorerr.RateLimited:
		return p.onRateLimited(n, r, now, jitter)
	}
	return p.onRetryable(n, r, now, jitter)
}

// Outcome is Decide applied to s, for a caller that owns s: it returns
// the decision's Close and Pause.
func (p Policy) Outcome(s *State, r Result, now time.Time, jitter func(key string, n int) time.Duration) (close *Close, pause bool) {
	d := p.Decide(s, r, now, jitter)
	d.Apply(s)
	return d.Close, d.Pause
}

// recorded is what every result does to s: a recorded response is named
// and its window left kept; a served Megvii answer spends the budget and
// says which images it asked for and lacked; anything but a rate limit
// ends a run of Baidu error 18.
func (p Policy) recorded(s State, r Result, now time.Time) State {
	if r.Recorded {
		s.Responses = append(s.Responses, r.ResponseID)
		s.LastWindowLeft = p.Deadline(&s).Sub(now).Seconds()
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
	return s
}

// onSuccess: an answer. Megvii: harvested, unless the budget allows
// asking for the images the answer lacked, or the last chance found the
// flow unfinished. Baidu: the endpoint is done (baiduSuccess).
func (p Policy) onSuccess(s State, r Result, now time.Time) Decision {
	s.Failures, s.LastError = 0, ""
	if s.Vendor != contract.Megvii {
		p.TokenInvalidRun.reset()
		cl := p.baiduSuccess(&s, r, now)
		return Decision{State: s, Close: cl}
	}
	// Images come only with status OK (000); a budget above one asks for
	// what the answer of 4 did not return.
	if _, more := NextReturnImage(&s); more && s.Spent < p.MegviiCallBudget && megvii.Status(s.FlowStatus) == megvii.StatusOK {
		s.NextAt = now
		return Decision{State: s}
	}
	if st := megvii.Status(s.FlowStatus); r.Served && (st == megvii.StatusNotStarted || st == megvii.StatusProcessing) {
		// The last chance found the flow unfinished (000: NOT_STARTED,
		// never begun; PROCESSING, under way, no result fields): the user
		// never finished. The answer is archived, the flow status kept.
		return Decision{State: s, Close: &Close{contract.OutcomeNotVerified, "the user never finished: get_result's last-chance answer has status " + string(st)}}
	}
	return Decision{State: s, Close: &Close{Outcome: contract.OutcomeHarvested}}
}

// onDestroyed: the vendor says the data is gone. For Baidu inside the data
// window that is also 001's answer for another application's access_token:
// retried, and an account fault when it persists across verifications.
func (p Policy) onDestroyed(s State, r Result, now time.Time, jitter Jitterer) Decision {
	if s.Vendor != contract.Baidu {
		return Decision{State: s, Close: &Close{contract.OutcomeLost, "the vendor destroyed the data: " + r.Message}}
	}
	if p.inDataWindow(&s, now) {
		// Inside the data window the token cannot have expired: 001 gives
		// the same answer for a verify_token used with another
		// application's access_token. Not a verdict: retried; an account
		// fault when it persists across verifications.
		s.TokenInvalid++
		if n := p.TokenInvalidRun.add(s.Key()); p.BaiduTokenInvalidFaults > 0 && n >= p.BaiduTokenInvalidFaults {
			s.LastError = fmt.Sprintf("account fault: %d verifications in a row answered %q inside their data windows, also with a fresh access_token: are the keys those of the application that generated the verify_tokens? (001's FAQ) %s",
				n, baidu.TokenInvalidMessage, r.Message)
			s.NextAt = now
			return Decision{State: s, Pause: true}
		}
		p.retryLater(&s, now, jitter, fmt.Sprintf("%s inside the data window, also with a fresh access_token (%d times): an expired token and another application's access_token get the same answer (001's FAQ); retrying: %s",
			r.Endpoint, s.TokenInvalid, r.Message))
		return Decision{State: s}
	}
	if s.CompletedAt == nil {
		// After the token window with no completion and no other answer:
		// an unused token and a mismatched access_token get the same
		// message, so nothing says whether the user verified.
		return Decision{State: s, Close: &Close{contract.OutcomeLost, "the vendor answered " + r.Message + " after the token window and nothing else: an unused token and another application's access_token get the same answer (001's FAQ), so whether a verification happened is unknown"}}
	}
	if r.Endpoint == baidu.EndpointMedia || r.Endpoint == baidu.EndpointDetail {
		s.Done = append(s.Done, r.Endpoint)
		s.NextAt = now
		return Decision{State: s}
	}
	return Decision{State: s, Close: &Close{contract.OutcomeLost, "the vendor destroyed the data: " + r.Message}}
}

// onNotVerified: the vendor refuses the verification. A Baidu getall
// inside the token window is polled again (the user may retry); otherwise
// the endpoint is done.
func (p Policy) onNotVerified(s State, r Result, now time.Time) Decision {
	if s.Vendor == contract.Baidu && r.Endpoint == baidu.EndpointGetAll && now.Before(s.windowStart().Add(p.BaiduTokenWindow)) {
		// A refusal the documents do not name (222xxx, 223xxx) while the
		// token can still verify: the user may try again, so getall is
		// polled as after failed attempts.
		s.LastError = r.Message
		p.pollAgain(&s, now)
		return Decision{State: s}
	}
	s.Done = append(s.Done, r.Endpoint)
	s.NextAt = now
	return Decision{State: s}
}

// onRateLimited: tried again after RateLimitRetry (the adaptive limit, not
// the verification, absorbs the overload); Baidu's error 18 answered for
// BaiduQPSLimitGrace is an account fault.
func (p Policy) onRateLimited(s State, r Result, now time.Time, jitter Jitterer) Decision {
	s.LastError = r.Message
	if s.Vendor == contract.Baidu && r.Code == strconv.Itoa(baidu.CodeQPSLimit) && p.BaiduQPSLimitGrace > 0 {
		if s.QPSLimitedSince == nil {
			t := now
			s.QPSLimitedSince = &t
		} else if d := now.Sub(*s.QPSLimitedSince); d >= p.BaiduQPSLimitGrace {
			s.LastError = fmt.Sprintf("error 18 answered for %s: the paid APIs the H5 plan depends on (人脸实名认证V4, 人脸对比V4) are not enabled or their free quota is spent (document 001): %s",
				d.Round(time.Second), r.Message)
			s.NextAt = now
			return Decision{State: s, Pause: true}
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
	return Decision{State: s}
}

// onRetryable: a retryable failure, or a fault on our side: tried again
// later, within the window, unless a Megvii budget is spent.
func (p Policy) onRetryable(s State, r Result, now time.Time, jitter Jitterer) Decision {
	if s.Vendor == contract.Megvii && s.Spent >= p.MegviiCallBudget {
		s.LastError = r.Message
		return Decision{State: s, Close: &Close{contract.OutcomeFailed, "the one-shot answer was unusable and the call budget is spent: " + r.Message}}
	}
	p.retryLater(&s, now, jitter, r.Message)
	return Decision{State: s}
}

// retryLater schedules the next try after a failure, backing off, within
// the window.
func (p Policy) retryLater(s *State, now time.Time, jitter Jitterer, why string) {
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
