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
)

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	var down atomic.Bool
	srv := httptest.NewServer(Mux(reg, Check{"broker", func(context.Context) error {
		if down.Load() {
			return errors.New("dial tcp: refused")
		}
		return nil
	}}))
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
	srv := httptest.NewServer(Mux(NewRegistry()))
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
