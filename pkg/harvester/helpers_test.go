package harvester

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func postJSON(url, auth string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, rb, nil
}

func testLogger() *slog.Logger {
	if os.Getenv("HARVESTER_TEST_LOGS") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitDrained waits until e holds no open verification, or two minutes of
// real time have passed: the bound is generous because the race detector on
// a loaded 2-core machine runs the whole world (broker, simulator, ingest,
// harvester) many times slower. The assertions that follow say what is
// left.
func waitDrained(t *testing.T, e *Engine) {
	t.Helper()
	// An engine between a revocation and the next assignment holds nothing
	// either: drained means nothing pending while it owns partitions.
	for deadline := time.Now().Add(2 * time.Minute); (e.Pending() > 0 || e.Partitions() == 0) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// engineConfig is DefaultConfig changed by set: tests start from the
// defaults, as the flags do.
func engineConfig(set func(*EngineConfig)) EngineConfig {
	c := DefaultConfig()
	set(&c)
	return c
}
