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
	ceiling     float64       // the limit at the last cut: approached slowly
	rtt         time.Duration // smoothed latency of successful calls
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
func (l *limiter) release(now time.Time, rateLimited bool, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if rateLimited {
		// Halve at most once per round trip: the rejections of one overload
		// are one signal.
		if now.Sub(l.lastCut) >= max(l.rtt, 10*time.Millisecond) {
			l.ceiling = l.limit
			l.limit = math.Max(1, l.limit/2)
			l.lastCut = now
		}
		return
	}
	if took > 0 {
		if l.rtt == 0 {
			l.rtt = took
		}
		l.rtt = (7*l.rtt + took) / 8
	}
	step := 1 / l.limit
	if l.ceiling > 0 && l.limit >= 0.8*l.ceiling {
		// Near the level that overloaded the vendor: creep, so that replicas
		// settle just below it instead of oscillating around it.
		step /= 20
	}
	l.limit = math.Min(l.max, l.limit+step)
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
