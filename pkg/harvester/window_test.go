package harvester

import (
	"context"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// startWithPolicy is startHarvester with a policy of the test's choosing.
func (w *world) startWithPolicy(pol schedule.Policy) (stop func(), h *Harvester) {
	w.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := New(ctx, Config{Kafka: bus.Plain(w.broker.Addr()), GroupID: "harvester", EventsTopic: evTopic, StateTopic: stTopic, RawTopic: rawTopic, DLQTopic: dlqTopic,
		Engine: engineConfig(func(c *EngineConfig) {
			c.Policy, c.Callers, c.Limits, c.Now, c.Source, c.Metrics, c.IntentGrace, c.Answers = pol, map[contract.Vendor]Caller{contract.Megvii: MegviiCaller{Client: w.mc}, contract.Baidu: BaiduCaller{w.bc}}, map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 4}, contract.Baidu: {Concurrency: DefaultConcurrency}}, w.clk.Now, "/harvester", NewMetrics(nil), 90*time.Second, w.answers
		}),
		Logger: testLogger()})
	if err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	return func() { cancel(); <-done }, h
}

// Neither document says when Megvii's one-day window starts. The simulator
// keeps its own window, which starts earlier than the harvester can know:
// the token registered three hours after its issue without issued_at, or a
// vendor whose window leads the token's issue by two hours. No callback
// comes, so the harvester relies on its last-chance call. Configured
// conservatively (--megvii-retention 20h) it makes that call inside the
// vendor's real window and harvests the result; with the documents' day it
// would call too late (checked first, so the scenario means something).
func TestMegviiWindowStartsBeforeTheHarvesterKnows(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	const simRetention = 24 * time.Hour
	for _, c0 := range []struct {
		name       string
		late, lead time.Duration
		issuedAt   bool
	}{
		{"registered late without issued_at", 3 * time.Hour, 0, false},
		{"the vendor's window leads the token's issue", 0, 2 * time.Hour, true},
	} {
		t.Run(c0.name, func(t *testing.T) {
			w := newWorld(t, func(c *vendorsim.Config) { c.MegviiRetention, c.MegviiWindowLead = simRetention, c0.lead })
			c, err := w.sim.CreateMegvii(vendorsim.MegviiSpec{BizNo: "late-1", NoCallback: true})
			if err != nil {
				t.Fatal(err)
			}
			w.clk.Set(c.Created.Add(c0.late))
			vendorEnd := c.Created.Add(simRetention - c0.lead)
			pol := schedule.Defaults()
			pol.RetryMin, pol.RetryMax = time.Second, 10*time.Second
			st := &schedule.State{Vendor: contract.Megvii, ID: c.BizID, FirstSeen: c.Created.Add(c0.late)}
			reg := ingest.Registration{Vendor: "megvii", VerificationID: c.BizID, BizNo: c.BizNo}
			if c0.issuedAt {
				at := c.Created
				st.IssuedAt, reg.IssuedAt = &at, &at
			}
			if last := pol.Deadline(st).Add(-pol.MegviiLastChance); !last.After(vendorEnd) {
				t.Fatalf("scenario: the default last chance %v is inside the simulator's window (ends %v)", last, vendorEnd)
			}
			pol.MegviiRetention = 20 * time.Hour // conservative
			w.register([]ingest.Registration{reg})
			stop, h := w.startWithPolicy(pol)
			defer stop()
			w.waitLoaded(1, h.Engine())
			w.advance(25*time.Hour, h.Engine())
			waitDrained(t, h.Engine())
			ts := w.waitTerminals(contract.Key(contract.Megvii, c.BizID))
			if len(ts) != 1 || ts[0].Outcome != contract.OutcomeHarvested {
				t.Fatalf("terminals %+v, want one harvested", ts)
			}
			if s := w.sim.Stats(); s.MegviiDestroyedHits != 0 {
				t.Fatalf("the harvester called after the vendor's window: %+v", s)
			}
		})
	}
}

// The signed callback is evidence: the harvester records it on the raw
// topic (endpoint callback, with its sign and signer) before the state
// naming it, and the terminal lists it first.
func TestMegviiCallbackRecordedAsResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	w := newWorld(t, nil)
	c, err := w.sim.CreateMegvii(vendorsim.MegviiSpec{BizNo: "cb-1"})
	if err != nil {
		t.Fatal(err)
	}
	w.register([]ingest.Registration{{Vendor: "megvii", VerificationID: c.BizID, BizNo: c.BizNo}})
	stop, h := w.startHarvester(map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 4}})
	defer stop()
	w.waitLoaded(1, h.Engine())
	w.advance(time.Hour, h.Engine())
	waitDrained(t, h.Engine())
	w.waitTerminals(contract.Key(contract.Megvii, c.BizID))
	terms, responses := w.rawTerminals()
	ts := terms[contract.Key(contract.Megvii, c.BizID)]
	getResult := contract.ResponseID(contract.Megvii, c.BizID, "get_result", 1)
	if len(ts) != 1 || ts[0].Outcome != contract.OutcomeHarvested || len(ts[0].Responses) != 2 || ts[0].Responses[1] != getResult ||
		!responses[ts[0].Responses[0]] || !responses[getResult] {
		t.Fatalf("terminals %+v: want the callback's response, then get_result's, both on the raw topic", ts)
	}
}
