package ingest

import (
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
)

// callerRates is a token bucket per caller (callerID): burst requests at
// once, refilled at rate a second. Callers are the configured bearer
// tokens, so the map holds at most one bucket per token.
type callerRates struct {
	now   clock.Now
	rate  float64
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newCallerRates(now clock.Now, rate float64, burst int) *callerRates {
	return &callerRates{now: now, rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes one token of caller's bucket, or reports false when it is
// empty.
func (c *callerRates) allow(caller string) bool {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.buckets[caller]
	if !ok {
		b = &bucket{tokens: c.burst, at: now}
		c.buckets[caller] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(c.burst, b.tokens+d.Seconds()*c.rate)
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
