package harvester

import (
	"math"
	"sync"
	"time"
)

// limiter bounds one vendor's calls: an adaptive concurrency limit (additive
// increase on success, multiplicative decrease on a rate-limit answer, so
// that replicas sharing an account converge below its limit without talking
// to each other), a QPS token bucket, and a pause after account faults.
type limiter struct {
	mu          sync.Mutex
	max         float64
	limit       float64
	inflight    int
	qps         float64
	tokens      float64
	last        time.Time
	pausedUntil time.Time
	lastCut     time.Time
}

func newLimiter(maxConc int, qps float64, now time.Time) *limiter {
	return &limiter{max: float64(maxConc), limit: float64(maxConc), qps: qps, tokens: math.Max(qps, 1), last: now}
}

// acquire takes a slot if the limits allow at now.
func (l *limiter) acquire(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.pausedUntil) || l.inflight >= int(l.limit) {
		return false
	}
	if l.qps > 0 {
		l.tokens = math.Min(math.Max(l.qps, 1), l.tokens+now.Sub(l.last).Seconds()*l.qps)
		l.last = now
		if l.tokens < 1 {
			return false
		}
		l.tokens--
	}
	l.inflight++
	return true
}

// release returns a slot and adapts the limit to how the call went.
func (l *limiter) release(now time.Time, rateLimited bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if rateLimited {
		// Halve at most once per second: a burst of rejections from one
		// overload is one signal.
		if now.Sub(l.lastCut) >= time.Second {
			l.limit = math.Max(1, l.limit/2)
			l.lastCut = now
		}
		return
	}
	l.limit = math.Min(l.max, l.limit+1/l.limit)
}

// pause stops new calls until until.
func (l *limiter) pause(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
}

func (l *limiter) state(now time.Time) (limit float64, inflight int, paused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.inflight, now.Before(l.pausedUntil)
}
