package harvester

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestReplayedCallbackAfterClosedRetentionCallsNothing: a Megvii
// verification is harvested and archived by the real archiver (its index
// entry is in the bucket); its closed marker is deleted after
// --closed-retention; the signed callback is then posted again to ingest.
// The harvester finds the verification in the evidence index: no
// get_result call, no second terminal, the event counted.
func TestReplayedCallbackAfterClosedRetentionCallsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	w := newWorld(t, nil)
	c, err := w.sim.CreateMegvii(vendorsim.MegviiSpec{BizNo: "replayed"})
	if err != nil {
		t.Fatal(err)
	}
	key := contract.Key(contract.Megvii, c.BizID)
	w.register([]ingest.Registration{{Vendor: "megvii", VerificationID: c.BizID, BizNo: c.BizNo}})
	reg := prometheus.NewRegistry()
	const retention = 2 * time.Hour
	stop, h := w.startHarvesterWith(map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 2}}, func(ec *EngineConfig) {
		ec.Metrics, ec.ClosedRetention = NewMetrics(reg), retention
	})
	defer stop()
	e := h.Engine()
	w.waitLoaded(1, e)
	w.advance(10*time.Minute, e)
	waitDrained(t, e)
	if ts := w.waitTerminals(key); len(ts) != 1 || ts[0].Outcome != contract.OutcomeHarvested {
		t.Fatalf("before the replay: terminals %+v, want one harvested", ts)
	}

	// The real archiver archives the raw topic into the same bucket.
	acfg := archiver.DefaultConfig()
	acfg.Store, acfg.SpoolDir, acfg.Now = w.answers, t.TempDir(), w.clk.Now
	a, err := archiver.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := archiver.DefaultRunConfig()
	rcfg.Kafka, rcfg.GroupID = bus.Plain(w.broker.Addr()), "archiver"
	rcfg.RawTopic, rcfg.ResultsTopic, rcfg.DLQTopic = rawTopic, resultsTopic, dlqTopic
	runner, err := archiver.NewRunner(context.Background(), rcfg, a)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopArchiver := context.WithCancel(context.Background())
	archived := make(chan struct{})
	go func() { _ = runner.Run(actx); close(archived) }()
	defer func() { stopArchiver(); <-archived }()
	eventually(t, "the verification is in the evidence index", func() bool {
		_, err := w.answers.Attributes(context.Background(), archiver.IndexKey(contract.Megvii, c.BizID))
		return err == nil
	})

	// The closed marker goes after the closed retention.
	w.advance(retention+2*time.Minute, e)
	eventually(t, "the closed marker is deleted", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, ok := e.closed[key]
		return !ok
	})

	// The signed callback, replayed: the very bytes the vendor sent.
	var cb *contract.Response
	w.readTopic(rawTopic, func(m contract.Message) {
		if r, err := contract.ParseResponse(m); err == nil && r.Endpoint == contract.EndpointCallback && r.VerificationID == c.BizID {
			cb = &r
		}
	})
	if cb == nil {
		t.Fatal("no callback on the raw topic")
	}
	callbacksBefore := metricstest.Sum(t, reg, "faceharvest_harvester_events_total", "type="+contract.TypeMegviiCallback)
	resp, err := http.Post(w.ingest.URL+ingest.RouteMegviiCallback, "application/x-www-form-urlencoded",
		strings.NewReader(string(megvii.Callback{Data: string(cb.Body), Sign: cb.Sign}.EncodeForm())))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("replayed callback: ingest answered %d", resp.StatusCode)
	}
	// Consumed: counted as archived, or (what the check prevents) a
	// verification scheduled again.
	eventually(t, "the harvester handled the replayed callback", func() bool {
		return metricstest.Sum(t, reg, "faceharvest_harvester_events_total", "type="+contract.TypeMegviiCallback) > callbacksBefore &&
			(metricstest.Sum(t, reg, "faceharvest_harvester_events_already_archived_total") > 0 || e.Pending() > 0)
	})
	w.advance(time.Hour, e)
	waitDrained(t, e)

	if st := w.sim.Stats(); st.MegviiCalls[megvii.EndpointGetResult] != 1 || st.MegviiServedTwice != 0 {
		t.Errorf("after the replay: get_result calls %d (served twice %d), want 1 (the harvest's)", st.MegviiCalls[megvii.EndpointGetResult], st.MegviiServedTwice)
	}
	if ts := w.waitTerminals(key); len(ts) != 1 {
		t.Errorf("after the replay: %d terminals, want 1", len(ts))
	}
	if n := metricstest.Sum(t, reg, "faceharvest_harvester_events_already_archived_total", "vendor=megvii"); n != 1 {
		t.Errorf("events already archived: %v, want 1", n)
	}
}

// failingBucket answers every Attributes with an error, as an unreachable
// store does.
type failingBucket struct{ *objstore.Memory }

func (failingBucket) Attributes(context.Context, string) (objstore.Attrs, error) {
	return objstore.Attrs{}, errors.New("connection refused")
}

// An event of a verification the engine does not know is checked against
// the evidence index: held there, it is ignored; absent, applied; with
// the store unreachable, applied all the same after the check's retries
// (a harvest is never skipped for the store), and for a minute after
// that without waiting for the store.
func TestIndexCheckOfUnknownVerifications(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	reg := prometheus.NewRegistry()
	r.eng.m = NewMetrics(reg)
	bucket := objstore.NewMemory()
	ctx := context.Background()
	entry := archiver.IndexKey(contract.Megvii, "held")
	if err := bucket.Create(ctx, entry, strings.NewReader("{}"), 2, "application/json", nil); err != nil {
		t.Fatal(err)
	}
	r.eng.cfg.Answers = bucket
	ev := func(id string) contract.Event {
		return contract.Event{Vendor: contract.Megvii, VerificationID: id, Status: "OK", ReceivedAt: r.clk.Now()}
	}
	if archived, ok := r.eng.archived(ctx, ev("held")); !archived || !ok {
		t.Fatalf("indexed verification: archived %v ok %v, want true true", archived, ok)
	}
	if archived, ok := r.eng.archived(ctx, ev("new")); archived || !ok {
		t.Fatalf("new verification: archived %v ok %v, want false true", archived, ok)
	}
	r.event(contract.TypeMegviiCallback, ev("new"))
	if archived, ok := r.eng.archived(ctx, ev("new")); archived || !ok {
		t.Fatalf("known verification: archived %v ok %v, want false true", archived, ok)
	}
	if n := metricstest.Sum(t, reg, "faceharvest_harvester_events_already_archived_total", "vendor=megvii"); n != 1 {
		t.Fatalf("already archived %v, want 1", n)
	}

	r.eng.cfg.Answers = failingBucket{bucket}
	start := time.Now()
	if archived, ok := r.eng.archived(ctx, ev("held")); archived || !ok {
		t.Fatalf("store unreachable: archived %v ok %v, want false true (applied unchecked)", archived, ok)
	}
	if took := time.Since(start); took < indexCheckWait/2 {
		t.Errorf("store unreachable: gave up after %s, want the check retried for about %s", took, indexCheckWait)
	}
	if archived, ok := r.eng.archived(ctx, ev("other")); archived || !ok {
		t.Fatalf("store down: archived %v ok %v, want false true", archived, ok)
	}
	if n := metricstest.Sum(t, reg, "faceharvest_harvester_index_check_failures_total", "vendor=megvii"); n != 2 {
		t.Fatalf("index check failures %v, want 2", n)
	}
	// Shutting down during the check: not acknowledged (redelivered).
	r.clk.Advance(indexDownFor + time.Second)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := r.eng.archived(cctx, ev("third")); ok {
		t.Fatal("check cut short by shutdown: ok, want the event left unacknowledged")
	}
}

// A registration by another caller than the owner changes nothing, writes
// nothing, and is counted.
func TestForeignRegistrationCounted(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	reg := prometheus.NewRegistry()
	r.eng.m = NewMetrics(reg)
	issued := r.clk.Now().Add(-time.Hour)
	r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "owned", BizNo: "mine", Caller: "a", IssuedAt: &issued})
	eventually(t, "the registration is stored", r.eng.quiet)
	writes := len(r.store.writes)
	early := issued.Add(-6 * 24 * time.Hour)
	r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "owned", BizNo: "theirs", Caller: "b", IssuedAt: &early})
	eventually(t, "the engine is quiet", r.eng.quiet)
	st, _ := r.eng.Snapshot("megvii:owned")
	if st.BizNo != "mine" || st.Owner != "a" || !st.IssuedAt.Equal(issued) {
		t.Errorf("after a foreign registration: biz_no %q owner %q issued %v", st.BizNo, st.Owner, st.IssuedAt)
	}
	if n := metricstest.Sum(t, reg, "faceharvest_harvester_foreign_events_refused_total", "type="+contract.TypeTokenRegistered); n != 1 {
		t.Errorf("foreign registrations counted %v, want 1", n)
	}
	if len(r.store.writes) != writes {
		t.Errorf("a foreign registration wrote the state: %v", r.store.writes[writes:])
	}
}
