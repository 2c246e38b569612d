package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// CheckTimeout bounds every readiness check; probes' timeoutSeconds must stay
// above it.
const CheckTimeout = 2 * time.Second

// Readiness answers /readyz. A process is ready once every check has passed
// at least once; after that a check must fail without a break for the
// tolerance before /readyz fails. A dependency every replica shares (the
// brokers, the store) fails for all of them at once, so without a tolerance a
// brief hiccup would take every replica out of its Service together; a
// failure that lasts is still reported, and a process that never reached its
// dependencies is never ready. While it is ready a failing check is named
// under "degraded". Drain makes /readyz fail at once and for good.
type Readiness struct {
	checks    []Check
	tolerance time.Duration
	now       func() time.Time
	draining  atomic.Bool

	mu    sync.Mutex
	state []checkState // by index of checks
}

type checkState struct {
	passed       bool      // has passed at least once
	failingSince time.Time // zero while passing
}

// NewReadiness returns a Readiness over checks with tolerance (0: any failure
// fails /readyz at once), reading time from now (time.Now when nil).
func NewReadiness(tolerance time.Duration, now func() time.Time, checks ...Check) *Readiness {
	if now == nil {
		now = time.Now
	}
	return &Readiness{checks: checks, tolerance: tolerance, now: now, state: make([]checkState, len(checks))}
}

// Drain makes /readyz answer 503 from now on: the process is shutting down
// and wants no new traffic.
func (r *Readiness) Drain() { r.draining.Store(true) }

// Evaluate runs every check at once, each within CheckTimeout, and reports
// whether the process is ready, with the error of each failing check: failed
// when it makes the process unready, degraded when it is still tolerated.
func (r *Readiness) Evaluate(ctx context.Context) (ready bool, failed, degraded map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	errs := make([]error, len(r.checks))
	var wg sync.WaitGroup
	for i, c := range r.checks {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Fn(ctx) }()
	}
	wg.Wait()
	now := r.now()
	failed, degraded = map[string]string{}, map[string]string{}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, err := range errs {
		st := &r.state[i]
		if err == nil {
			st.passed, st.failingSince = true, time.Time{}
			continue
		}
		if st.failingSince.IsZero() {
			st.failingSince = now
		}
		if !st.passed || now.Sub(st.failingSince) >= r.tolerance {
			failed[r.checks[i].Name] = err.Error()
		} else {
			degraded[r.checks[i].Name] = err.Error()
		}
	}
	return len(failed) == 0 && !r.draining.Load(), failed, degraded
}

// ServeHTTP answers 200 {"ready":true} (with "degraded" naming tolerated
// failures) or 503 {"ready":false} naming the failed checks, or
// "draining":true.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ready, failed, degraded := r.Evaluate(req.Context())
	body := map[string]any{"ready": ready}
	if len(failed) > 0 {
		body["failed"] = failed
	}
	if len(degraded) > 0 {
		body["degraded"] = degraded
	}
	if r.draining.Load() {
		body["draining"] = true
	}
	w.Header().Set("Content-Type", "application/json")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}
