package harvester

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The runbook sends operators to the harvester's logs for the ids of lost,
// failed and expired verifications: every terminal decision is logged with
// its vendor, verification id, outcome and reason once its envelope is
// published.
func TestTerminalDecisionsAreLogged(t *testing.T) {
	store, raw := &memStore{}, &memRaw{}
	caller := &fakeCaller{store: store, answer: okAnswer}
	clk := clock.NewSim(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), 0, nil)
	var logs syncBuffer
	eng := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.Now, c.Source, c.Logger = schedule.Defaults(), map[contract.Vendor]Caller{contract.Megvii: caller}, map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 1}}, store, raw, clk.Now, "/test", slog.New(slog.NewJSONHandler(&logs, nil))
	}))
	ctx := stepped(t, eng)
	eng.AddPartition(0, nil)
	issued := clk.Now().Add(-25 * time.Hour)
	<-eng.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "old", IssuedAt: &issued, ReceivedAt: clk.Now()})
	<-eng.Apply(0, contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "b1", Status: "OK", ReceivedAt: clk.Now()})
	want := map[string]string{"old": contract.OutcomeExpired, "b1": contract.OutcomeHarvested}
	settle(t, ctx, eng)
	for id := range want {
		if rec := store.get("megvii:" + id); rec == nil || rec.ClosedAt == nil {
			t.Fatalf("%s not closed: %+v", id, rec)
		}
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l struct {
			Msg, Vendor, Verification, Outcome string
			Reason                             *string
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "verification closed" && l.Vendor == "megvii" && l.Reason != nil {
			got[l.Verification] = l.Outcome
		}
	}
	for id, outcome := range want {
		if got[id] != outcome {
			t.Errorf("%s: logged outcome %q, want %q\n%s", id, got[id], outcome, logs.String())
		}
	}
}
