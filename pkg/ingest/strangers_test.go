package ingest

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCallbackBodyFitsWhatItCarries: a callback holds no images, so a body
// beyond a few tens of KiB is refused 413 without its signature being
// checked (a stranger's megabyte buys nothing); the token API, which
// authenticates first, still takes a large batch. A landing takes no body.
func TestCallbackBodyFitsWhatItCarries(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = DefaultConfig().MaxBodyBytes })
	big := []byte("sign=" + strings.Repeat("0", 40) + "&data=" + strings.Repeat("x", 100<<10))
	for _, route := range []string{RouteMegviiCallback} {
		r := f.do(t, "POST", route, "application/x-www-form-urlencoded", big, nil)
		if r.code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with a %d-byte body: %d, want 413", route, len(big), r.code)
		}
	}
	if got := metricValue(t, f.reg, "faceharvest_ingest_signature_failures_total", map[string]string{"reason": "mismatch"}); got != 0 {
		t.Errorf("an oversized callback had its signature checked (%v)", got)
	}
	var batch bytes.Buffer
	batch.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			batch.WriteString(",")
		}
		batch.WriteString(`{"vendor":"megvii","verification_id":"` + strings.Repeat("b", 100) + strconv.Itoa(i) + `","biz_no":"` + strings.Repeat("n", 60) + `"}`)
	}
	batch.WriteString("]")
	if r := f.do(t, "POST", RouteTokens, "application/json", batch.Bytes(), map[string]string{"Authorization": "Bearer " + bearer}); r.code != 202 {
		t.Fatalf("a %d-byte registration batch: %d %s", batch.Len(), r.code, r.raw)
	}
}

// TestConnectionsAreCapped: the listener holds at most MaxConnections
// connections, idle keep-alive ones included, and the server closes an
// idle one after IdleTimeout: a stranger's thousands of idle connections
// cost no more than MaxConnections do.
func TestConnectionsAreCapped(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConnections, c.IdleTimeout = 4, 200*time.Millisecond })
	if got := f.s.HTTPServer(nil).IdleTimeout; got != 200*time.Millisecond {
		t.Fatalf("IdleTimeout %s", got)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := f.s.LimitListener(ln)
	srv := f.s.HTTPServer(nil)
	go func() { _ = srv.Serve(lim) }()
	t.Cleanup(func() { srv.Close() })
	// Eight connections each send a landing; only four are served while
	// all stay open.
	var mu sync.Mutex
	served := 0
	var conns []net.Conn
	var wg sync.WaitGroup
	for i := range 8 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = io.WriteString(c, "GET "+RouteBaiduSuccess+"?verify_token=t"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: x\r\n\r\n")
			var buf [12]byte
			if k, _ := io.ReadFull(c, buf[:]); k == 12 {
				mu.Lock()
				served++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if served != 4 {
		t.Errorf("%d of 8 idle connections served at once, want 4 (MaxConnections)", served)
	}
	// Their idle timeout frees the slots: the others are served.
	deadline := time.Now().Add(time.Minute)
	for served < 8 && time.Now().Before(deadline) {
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			var buf [12]byte
			if k, _ := io.ReadFull(c, buf[:]); k == 12 && strings.HasPrefix(string(buf[:]), "HTTP/1.1") {
				served++
			}
		}
	}
	if served != 8 {
		t.Errorf("after the idle timeout %d of 8 were served", served)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestOversizedAnnouncementAnsweredAtOnce: a callback announcing more than
// it may send and then holding is answered 413 at once and its connection
// closed, rather than waiting for the body until the read timeout.
func TestOversizedAnnouncementAnsweredAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(f.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "POST "+RouteMegviiCallback+" HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	b, _ := io.ReadAll(c) // ends when ingest closes the connection
	if !strings.HasPrefix(string(b), "HTTP/1.1 413") || !strings.Contains(string(b), "Connection: close") {
		t.Fatalf("answer %q, want 413 and the connection closed", b)
	}
}
