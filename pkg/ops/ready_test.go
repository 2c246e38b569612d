package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// fakeNow is a clock the test moves.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) now() time.Time          { f.mu.Lock(); defer f.mu.Unlock(); return f.t }
func (f *fakeNow) advance(d time.Duration) { f.mu.Lock(); f.t = f.t.Add(d); f.mu.Unlock() }

// A dependency failure makes /readyz fail only once it has lasted the
// tolerance, so a broker hiccup, which every replica sees at once, does not
// take every replica out of its Service; a process that never reached a
// dependency is not ready; draining fails /readyz at once.
func TestReadinessTolerance(t *testing.T) {
	clk := &fakeNow{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	brokerErr := errors.New("dial tcp: refused")
	started := false
	r := NewReadiness(30*time.Second, clk.now,
		Check{"kafka", func(context.Context) error { mu.Lock(); defer mu.Unlock(); return brokerErr }},
		Check{"started", func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if !started {
				return errors.New("restoring")
			}
			return nil
		}})
	srv := httptest.NewServer(Mux(NewRegistry(), r))
	defer srv.Close()
	probe := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	set := func(broker error, s bool) { mu.Lock(); brokerErr, started = broker, s; mu.Unlock() }

	steps := []struct {
		name    string
		advance time.Duration
		broker  error
		started bool
		code    int
		key     string // a check named under failed (503) or degraded (200)
	}{
		{"never reached: not ready however long ago it started", time.Hour, errors.New("refused"), false, 503, "kafka"},
		{"still restoring", 0, nil, false, 503, "started"},
		{"ready", time.Second, nil, true, 200, ""},
		{"a hiccup begins: still ready, reported degraded", time.Second, errors.New("timeout"), true, 200, "kafka"},
		{"29 s into it: still ready", 29 * time.Second, errors.New("timeout"), true, 200, "kafka"},
		{"the broker is back", 0, nil, true, 200, ""},
		{"a second hiccup counts from its own start", time.Second, errors.New("timeout"), true, 200, "kafka"},
		{"20 s into it", 20 * time.Second, errors.New("timeout"), true, 200, "kafka"},
		{"30 s into it: an outage, not ready", 10 * time.Second, errors.New("timeout"), true, 503, "kafka"},
		{"back", time.Second, nil, true, 200, ""},
	}
	for _, s := range steps {
		clk.advance(s.advance)
		set(s.broker, s.started)
		code, body := probe()
		ok := code == s.code
		if s.key != "" {
			field := "degraded"
			if s.code == 503 {
				field = "failed"
			}
			m, _ := body[field].(map[string]any)
			ok = ok && m[s.key] != nil
		}
		if !ok {
			t.Fatalf("%s: %d %v, want %d naming %q", s.name, code, body, s.code, s.key)
		}
	}
	r.Drain()
	if code, body := probe(); code != 503 || body["draining"] != true {
		t.Fatalf("draining: %d %v", code, body)
	}
}

// Checks run at once, so three slow dependencies still answer within the
// one 2 s deadline, below the probes' timeoutSeconds.
func TestReadinessChecksRunConcurrently(t *testing.T) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	slow := func(context.Context) error { wg.Done(); <-release; return nil }
	r := NewReadiness(0, time.Now, Check{"a", slow}, Check{"b", slow}, Check{"c", slow})
	go func() { wg.Wait(); close(release) }() // returns only once all three run together
	if ready, _, _ := r.Evaluate(context.Background()); !ready {
		t.Fatal("not ready")
	}
}
