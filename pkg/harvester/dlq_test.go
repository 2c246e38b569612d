package harvester

import (
	"context"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestUndecodableEventsAreDeadLettered: garbage on the events topic goes to
// the dead-letter topic with its reason, and the partition keeps moving: a
// verification registered after the garbage is harvested.
func TestUndecodableEventsAreDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	w := newWorld(t, nil)
	good := contract.Envelope{ID: "x", Source: "/test", Type: contract.TypeTokenRegistered, Time: time.Now(), Key: "megvii:k"}.Message()
	noHeaders := contract.Message{Key: []byte("megvii:a"), Value: []byte(`{}`)}
	unknownType := contract.Envelope{ID: "u", Source: "/test", Type: "com.example.other", Time: time.Now(), Key: "megvii:b", Value: []byte(`{}`)}.Message()
	badValue := good
	badValue.Key, badValue.Value = []byte("megvii:c"), []byte(`not json`)
	wrongKey := contract.Envelope{ID: "k", Source: "/test", Type: contract.TypeTokenRegistered, Time: time.Now(), Key: "megvii:d",
		Value: []byte(`{"vendor":"megvii","verification_id":"e","received_at":"2026-07-01T09:00:00Z"}`)}.Message()
	pw := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(w.broker.Addr()), Topic: evTopic})
	defer pw.Close()
	if err := pw.WriteMessages(context.Background(), noHeaders, unknownType, badValue, wrongKey); err != nil {
		t.Fatal(err)
	}
	c, err := w.sim.CreateMegvii(vendorsim.MegviiSpec{})
	if err != nil {
		t.Fatal(err)
	}
	w.register([]ingest.Registration{{Vendor: "megvii", VerificationID: c.BizID}})
	stop, h := w.startHarvester(nil)
	defer stop()
	w.waitLoaded(1, h.Engine())
	w.advance(2*time.Minute, h.Engine())
	waitDrained(t, h.Engine())
	terms, _ := w.rawTerminals()
	if ts := terms[contract.Key(contract.Megvii, c.BizID)]; len(ts) != 1 || ts[0].Outcome != contract.OutcomeHarvested || ts[0].WindowLeftSeconds <= 0 {
		t.Fatalf("the verification after the garbage: %+v", ts)
	}
	reasons := map[string]string{}
	// Read the topic to its end until the four are there (3 minutes at most).
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		w.readTopic(dlqTopic, func(m contract.Message) {
			if r, ok := m.Header(contract.HeaderDLQReason); ok {
				reasons[string(m.Key)] = string(r)
			}
		})
		if len(reasons) >= 4 || time.Now().After(deadline) {
			break
		}
	}
	for _, k := range []string{"megvii:a", "megvii:b", "megvii:c", "megvii:d"} {
		if reasons[k] == "" {
			t.Errorf("%s not dead-lettered with a reason: %v", k, reasons)
		}
	}
}
