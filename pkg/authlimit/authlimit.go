// Package authlimit bounds guessing of bearer tokens: a bucket of failed
// checks per client address, shared by the audit page and ingest.
package authlimit

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
)

// Failures bounds guessing: each client address (an IPv6 address's /64)
// has a bucket of burst failed token checks (a wrong bearer token, a wrong
// token typed into the login form), refilled one per every. An address
// whose bucket is empty is answered 429 without its token being checked,
// so that guessing cannot go on at more than one try per every. Sessions
// and the trusted proxy are not limited: they present no token to guess.
// At most max addresses are tracked; when that many are failing at once,
// the others share one bucket.
type Failures struct {
	now   clock.Now
	burst float64
	every time.Duration
	max   int

	mu sync.Mutex
	m  map[string]*failBucket
}

type failBucket struct {
	tokens float64
	at     time.Time
}

const overflowAddr = "overflow"

// New tracks at most max addresses, each allowed burst failed checks,
// refilled one per every.
func New(now clock.Now, burst int, every time.Duration, max int) *Failures {
	return &Failures{now: now, burst: float64(burst), every: every, max: max, m: map[string]*failBucket{}}
}

// addrKey is the bucket of an address: itself, or its /64 for IPv6.
func addrKey(remote string) string {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return remote
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// refill brings b up to now; the caller holds mu.
func (f *Failures) refill(b *failBucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(f.burst, b.tokens+float64(d)/float64(f.every))
		b.at = now
	}
}

// Blocked returns how long remote (an address without its port) must
// wait before its next try, or 0.
func (f *Failures) Blocked(remote string) time.Duration {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.m[addrKey(remote)]
	if !ok {
		if b, ok = f.m[overflowAddr]; !ok {
			return 0
		}
	}
	f.refill(b, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(f.every))
}

// Fail counts a failed token check of remote.
func (f *Failures) Fail(remote string) {
	now := f.now()
	k := addrKey(remote)
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.m[k]
	if !ok {
		if len(f.m) >= f.max {
			f.sweep(now)
		}
		if len(f.m) >= f.max {
			k = overflowAddr
		}
		if b, ok = f.m[k]; !ok {
			b = &failBucket{tokens: f.burst, at: now}
			f.m[k] = b
		}
	}
	f.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// sweep forgets the addresses whose buckets are full again; the caller
// holds mu.
func (f *Failures) sweep(now time.Time) {
	for k, b := range f.m {
		if f.refill(b, now); b.tokens >= f.burst {
			delete(f.m, k)
		}
	}
}

// Tracked returns how many buckets are held.
func (f *Failures) Tracked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.m)
}
