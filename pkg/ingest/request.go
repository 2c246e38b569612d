package ingest

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// What every route shares: the wrapper with request ids, metrics, limits,
// refusals and panic recovery; reading bodies; answering.

// closeUnread makes a refusal of a request that came with a body close
// its connection: net/http would otherwise read up to 256 KiB of the
// unread body (waiting for a silent client until the read timeout) before
// sending the answer, to keep the connection.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// Refusals logged: a burst of refusalLogBurst lines, then refusalLogRate a
// second; the next line logged says how many were not
// (refusals_not_logged). Metrics count every refusal.
const (
	refusalLogBurst = 20
	refusalLogRate  = 5
)

// maxLandingBody bounds what a landing (a GET, or a HEAD) may send as a
// body: it carries none.
const maxLandingBody = 1 << 10

// bodyLimit is route's request body limit: what it carries, no more. The
// callbacks (vendor-signed data, no images) are read before their
// signature is checked, so a stranger can send them: they get the small
// MaxCallbackBytes; the token API and issuing routes authenticate before
// reading, and take MaxBodyBytes (a Baidu issuing request may carry an
// image).
func (s *Server) bodyLimit(route string) int64 {
	switch route {
	case RouteMegviiCallback, RouteMegviiReturn:
		return s.cfg.MaxCallbackBytes
	case RouteTokens, RouteMegviiTokens, RouteBaiduTokens:
		return s.cfg.MaxBodyBytes
	}
	return maxLandingBody
}

// reqError is a refusal: its status, a metric reason and a message safe to
// show the caller (never a secret or an ID number).
type reqError struct {
	status int
	reason string
	msg    string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Server) wrap(route string, h func(http.ResponseWriter, *http.Request) *reqError) http.Handler {
	var answered sync.Map // status code -> its counter, looked up once
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		rid := r.Header.Get("X-Request-Id")
		if !validID(rid, 64) {
			// Unique, not secret: math/rand, without a system call.
			var b [8]byte
			var h [16]byte
			binary.LittleEndian.PutUint64(b[:], rand.Uint64())
			hex.Encode(h[:], b[:])
			rid = string(h[:])
		}
		w.Header()["X-Request-Id"] = []string{rid} // canonical already
		if s.inFlight.Add(1) > int64(s.cfg.MaxInFlight) {
			s.inFlight.Add(-1)
			s.shed(w, r, route, rid, shedInFlight, &answered)
			return
		}
		defer s.inFlight.Add(-1)
		if shedsOnPublishWait(route) && s.waits.longest(s.cfg.Now()) > s.cfg.MaxPublishWait {
			s.shed(w, r, route, rid, shedPublishWait, &answered)
			return
		}
		s.m.inflight.Inc()
		start := s.cfg.Now()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.m.panics.Inc()
				s.log.Error("handler panic", "route", route, "request_id", rid, "panic", fmt.Sprint(p))
				if w.status == 0 {
					writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "request_id": rid})
				}
			}
			s.m.inflight.Dec()
			c, ok := answered.Load(w.status)
			if !ok {
				c, _ = answered.LoadOrStore(w.status, s.m.requests.WithLabelValues(route, strconv.Itoa(w.status)))
			}
			c.(prometheus.Counter).Inc()
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("request", "route", route, "status", w.status, "request_id", rid, "duration_ms", s.cfg.Now().Sub(start).Milliseconds())
			}
		}()
		r.Body = http.MaxBytesReader(w, r.Body, s.bodyLimit(route))
		if e := h(w, r); e != nil {
			s.m.rejected.WithLabelValues(route, e.reason).Inc()
			closeUnread(w, r)
			// A 409 for another caller's verification is final: no
			// Retry-After (one for a key in progress).
			if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests || (e.status == http.StatusConflict && e.reason != "foreign_caller") {
				w.Header().Set("Retry-After", s.retryAfter)
			}
			if e.status == http.StatusUnauthorized && (route == RouteTokens || route == RouteMegviiTokens || route == RouteBaiduTokens) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="faceharvest"`)
			}
			level := slog.LevelInfo
			if e.status >= 500 {
				level = slog.LevelWarn
			}
			// Every refusal is counted; its log line only within the
			// limit, so that a stranger's flood does not flood the logs.
			if s.refusalLogs.allow("") {
				s.log.Log(r.Context(), level, "request refused", "route", route, "status", e.status, "reason", e.reason, "error", e.msg, "request_id", rid,
					"refusals_not_logged", s.refusalsUnlogged.Swap(0))
			} else {
				s.refusalsUnlogged.Add(1)
			}
			writeJSON(w, e.status, map[string]any{"error": e.msg, "request_id": rid})
		}
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// validID accepts ids and tokens of printable ASCII without spaces or
// separators that would confuse keys, logs or URLs.
func validID(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// firstBodyBuf is the most a request's announced Content-Length reserves
// before its bytes arrive: a callback fits, and a stranger announcing a
// megabyte and sending nothing costs no more than this.
const firstBodyBuf = 16 << 10

// readBody reads the body into a buffer that grows with the bytes that
// arrive (doubling), never from the announced Content-Length alone.
func readBody(r *http.Request, limit int64) ([]byte, *reqError) {
	if r.ContentLength > limit {
		return nil, &reqError{status: http.StatusRequestEntityTooLarge, reason: "too_large", msg: fmt.Sprintf("body larger than %d bytes", limit)}
	}
	first := 4 << 10
	if n := r.ContentLength; n > 0 {
		first = int(min(n+1, firstBodyBuf)) // +1: the read that finds the end
	}
	b := make([]byte, 0, first)
	var err error
	for {
		if int64(len(b)) > limit {
			err = &http.MaxBytesError{Limit: limit}
			break
		}
		if len(b) == cap(b) {
			grown := make([]byte, len(b), max(len(b)+1, min(2*cap(b), int(limit)+1)))
			copy(grown, b)
			b = grown
		}
		var k int
		k, err = r.Body.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil {
			break
		}
	}
	if err == io.EOF {
		err = nil
		if r.ContentLength > 0 && int64(len(b)) != r.ContentLength {
			err = errors.New("body length differs from Content-Length")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &reqError{status: http.StatusRequestEntityTooLarge, reason: "too_large", msg: fmt.Sprintf("body larger than %d bytes", mbe.Limit)}
		}
		return nil, &reqError{status: http.StatusBadRequest, reason: "read", msg: "body could not be read"}
	}
	return b, nil
}
