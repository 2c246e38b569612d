package ingest

import (
	"container/list"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Load shedding: a request ingest cannot serve soon is answered 503 with
// Retry-After at once, before its body is read, rather than queued behind
// a broker that does not keep up. A shed request was not taken (nothing
// was published, nothing will be): sending it again is safe and needed.
//
// Two bounds, checked in this order:
//   - MaxInFlight requests are being served: every route sheds (reason
//     inflight);
//   - the oldest publish in progress has waited longer than MaxPublishWait
//     for the broker: the routes whose sender can send again, or whose
//     event the harvester does not need, shed (reason publish_wait).
//
// Which routes shed for the broker's wait, and why (docs/design/ingest.md):
//   - POST /v1/tokens and the issuing routes: the customer's back end
//     retries a 503 after Retry-After (an issuing request is shed before
//     its vendor call, so no token is issued that could not be registered);
//   - the Baidu landings and the Megvii return landing: a browser does not
//     send again, but a landing is only a trigger: the verification is
//     registered (its landing URL was signed then) and the harvester polls
//     the vendor for it all the same;
//   - not the Megvii notify_url callback: Megvii documents no resend
//     (documents 000 and 002), and a verification known only from its
//     callback would be lost. It waits for the broker, and sheds only at
//     MaxInFlight; a registered verification whose callback was shed is
//     still harvested by the harvester's last-chance get_result.

// The reasons of faceharvest_ingest_shed_total.
const (
	shedInFlight    = "inflight"
	shedPublishWait = "publish_wait"
	shedIssuing     = "issuing" // MaxIssuing issuing requests in progress
)

var shedReasons = []string{shedInFlight, shedPublishWait, shedIssuing}

// shedsOnPublishWait reports whether route sheds when the broker is slow.
func shedsOnPublishWait(route string) bool {
	switch route {
	case RouteTokens, RouteMegviiTokens, RouteBaiduTokens, RouteBaiduSuccess, RouteBaiduFailure, RouteMegviiReturn:
		return true
	}
	return false
}

// shed answers a request 503 with Retry-After before its body is read, so
// that it costs nothing, and counts it.
func (s *Server) shed(w http.ResponseWriter, r *http.Request, route, rid, reason string, answered *sync.Map) {
	s.m.shed.WithLabelValues(route, reason).Inc()
	s.m.rejected.WithLabelValues(route, "overloaded").Inc()
	w.Header().Set("Retry-After", s.retryAfter)
	closeUnread(w, r)
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "overloaded: nothing was stored; retry after Retry-After seconds", "request_id": rid})
	c, _ := answered.LoadOrStore(http.StatusServiceUnavailable, s.m.requests.WithLabelValues(route, "503"))
	c.(prometheus.Counter).Inc()
}

// publishWaits keeps the start times of the publishes waiting for the
// broker, oldest first.
type publishWaits struct {
	mu      sync.Mutex
	pending list.List // of time.Time, in start order
}

// begin records a publish starting at t; end takes its element.
func (p *publishWaits) begin(t time.Time) *list.Element {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.pending.Back(); b != nil && t.Before(b.Value.(time.Time)) {
		t = b.Value.(time.Time) // a clock stepping back keeps the order
	}
	return p.pending.PushBack(t)
}

func (p *publishWaits) end(e *list.Element) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending.Remove(e)
}

// longest is how long the oldest publish in progress has waited at now;
// 0 when none is.
func (p *publishWaits) longest(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.pending.Front()
	if f == nil {
		return 0
	}
	return now.Sub(f.Value.(time.Time))
}
