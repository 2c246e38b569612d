package ingest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// trickleBody gives a few bytes, then fails as a connection that went
// silent until its read deadline would.
type trickleBody struct{ r io.Reader }

func (b *trickleBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, errors.New("i/o timeout")
	}
	return n, err
}

func (b *trickleBody) Close() error { return nil }

// TestAnnouncedLengthIsNotAllocated: a request that announces 1 MiB and
// sends a few bytes must not cost 1 MiB. The buffer grows with the bytes
// that arrive, so a stranger's announcement buys nothing.
func TestAnnouncedLengthIsNotAllocated(t *testing.T) {
	const announced = 1 << 20
	read := func() *reqError {
		r := &http.Request{ContentLength: announced, Body: &trickleBody{strings.NewReader("data=abc&sign=")}}
		_, e := readBody(r, 2*announced)
		return e
	}
	if e := read(); e == nil || e.status != http.StatusBadRequest {
		t.Fatalf("a truncated body: %+v, want 400", e)
	}
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		_ = read()
	}
	runtime.ReadMemStats(&after)
	perCall := (after.TotalAlloc - before.TotalAlloc) / runs
	if perCall > 64<<10 {
		t.Fatalf("a request announcing %d bytes and sending 14 allocated %d bytes", announced, perCall)
	}
}

// TestBodyGrowsToWhatArrives: bodies of every size up to the limit are read
// whole, whatever Content-Length said, and refused beyond it.
func TestBodyGrowsToWhatArrives(t *testing.T) {
	for _, n := range []int{1, 100, 4 << 10, 16<<10 + 1, 100 << 10, 1 << 20} {
		for _, announce := range []bool{true, false} {
			body := strings.Repeat("x", n)
			r := &http.Request{Body: io.NopCloser(strings.NewReader(body)), ContentLength: -1}
			if announce {
				r.ContentLength = int64(n)
			}
			b, e := readBody(r, 1<<20)
			if e != nil || string(b) != body {
				t.Fatalf("%d bytes (announced %v): %d read, %+v", n, announce, len(b), e)
			}
		}
	}
	r := &http.Request{Body: http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(strings.Repeat("x", 1001))), 1000), ContentLength: -1}
	if _, e := readBody(r, 1000); e == nil || e.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("over the limit: %+v", e)
	}
}

// TestInFlightLimit: with the broker holding every publish, the requests
// beyond MaxInFlight are answered 503 with Retry-After at once, counted,
// and publish nothing; once the held ones finish, requests are served again.
func TestInFlightLimit(t *testing.T) {
	const limit = 2
	pub := &holdingPublisher{entered: make(chan struct{}, limit+1), release: make(chan struct{}), ctxErr: make(chan error, limit+2)}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.MaxInFlight, cfg.RetryAfter, cfg.Registry = limit, 3*time.Second, reg
	s, err := New(cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	post := func() (int, http.Header, string) {
		resp, err := http.Post(srv.URL+RouteMegviiCallback, "application/x-www-form-urlencoded", bytes.NewReader(signed(secretNew, docData()).EncodeForm()))
		if err != nil {
			return 0, nil, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	held := make(chan int, limit)
	for range limit {
		go func() { code, _, _ := post(); held <- code }()
		<-pub.entered
	}
	// Both slots are taken by requests waiting for the broker: the next one
	// is refused without waiting for anything.
	code, hdr, body := post()
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "3" || !strings.Contains(body, "nothing was stored") {
		t.Fatalf("request over the limit: %d %v %s", code, hdr, body)
	}
	if got := metricValue(t, reg, "faceharvest_ingest_rejections_total", map[string]string{"route": RouteMegviiCallback, "reason": "overloaded"}); got != 1 {
		t.Fatalf("overloaded rejections %v", got)
	}
	close(pub.release)
	for range limit {
		if code := <-held; code != http.StatusOK {
			t.Fatalf("held request: %d", code)
		}
	}
	if code, _, body := post(); code != http.StatusOK {
		t.Fatalf("after the held requests finished: %d %s", code, body)
	}
}

// TestBrokerTimeoutSaysRetryIsSafe: a 503 after a publish that was not
// acknowledged must not claim the event was not stored: it may have been.
func TestBrokerTimeoutSaysRetryIsSafe(t *testing.T) {
	f := newFixture(t, nil)
	f.pub.err = errors.New("kafka: request timed out")
	r := f.do(t, "POST", RouteMegviiCallback, "application/json", signed(secretNew, docData()).EncodeJSON(), nil)
	msg, _ := r.body["error"].(string)
	if r.code != 503 || strings.Contains(msg, "not stored") || !strings.Contains(msg, "may have been stored") || !strings.Contains(msg, "retrying is safe") {
		t.Fatalf("%d %q", r.code, msg)
	}
}

// TestHTTPServerLimits: the server ingest listens with refuses headers
// beyond MaxHeaderBytes (431) and has short read timeouts.
func TestHTTPServerLimits(t *testing.T) {
	pub := &memPublisher{}
	cfg := testConfig()
	cfg.MaxHeaderBytes = 16 << 10
	s, err := New(cfg, pub)
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer(nil)
	if hs.ReadHeaderTimeout <= 0 || hs.ReadHeaderTimeout > 10*time.Second || hs.ReadTimeout <= 0 || hs.ReadTimeout > 30*time.Second || hs.MaxHeaderBytes != 16<<10 {
		t.Fatalf("server limits: header timeout %v, read timeout %v, max header bytes %d", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.MaxHeaderBytes)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+RouteMegviiCallback, bytes.NewReader(signed(secretNew, docData()).EncodeForm()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Padding", strings.Repeat("p", 24<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || len(pub.envelopes(t)) != 0 {
		t.Fatalf("24 KiB of headers: %d", resp.StatusCode)
	}
}
