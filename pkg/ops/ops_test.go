package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	var down atomic.Bool
	srv := httptest.NewServer(Mux(reg, NewReadiness(0, nil, Check{"broker", func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp: refused")
		}
		return nil
	}})))
	defer srv.Close()
	get := func(p string) (int, string) {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cases := []struct {
		path   string
		down   bool
		status int
		want   string
	}{
		{"/healthz", true, 200, "ok"},
		{"/readyz", false, 200, `"ready":true`},
		{"/readyz", true, 503, `"broker":"dial tcp: refused"`},
		{"/metrics", false, 200, "go_goroutines"},
	}
	for _, c := range cases {
		down.Store(c.down)
		code, body := get(c.path)
		if code != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s down=%v: %d %s", c.path, c.down, code, body)
		}
	}
}

// The registry carries faceharvest_build_info, 1, labelled with the build.
func TestBuildInfoMetric(t *testing.T) {
	srv := httptest.NewServer(Mux(NewRegistry(), nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !regexp.MustCompile(`(?m)^faceharvest_build_info\{goversion="go1\.[^"]+",revision="[^"]+",version="[^"]+"\} 1$`).Match(b) {
		t.Fatalf("no build info:\n%s", b)
	}
}

// DelayStop drains when its actor ends on its own and returns after the
// delay; interrupted first, it neither drains nor waits.
func TestDelayStop(t *testing.T) {
	ended := make(chan struct{})
	drained := make(chan struct{})
	run, interrupt := DelayStop(func() error { <-ended; return errors.New("signal") }, func(error) {}, time.Hour, func() { close(drained) })
	done := make(chan error, 1)
	go func() { done <- run() }()
	close(ended)
	<-drained
	select {
	case <-done:
		t.Fatal("returned before its delay")
	default:
	}
	interrupt(nil) // the group stops it (a second actor ended): the delay is cut short
	if err := <-done; err == nil || err.Error() != "signal" {
		t.Fatalf("got %v", err)
	}

	quit := make(chan struct{})
	run, interrupt = DelayStop(func() error { <-quit; return nil }, func(error) { close(quit) }, time.Hour, func() { t.Error("drained although interrupted") })
	go func() { done <- run() }()
	interrupt(nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
