package harvester

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestTwentyMebibyteAnswer: a get_result with three 5 MiB images (about
// 20 MiB of JSON) is stored byte for byte in the object store, and the raw
// topic, at Kafka's default 1 MiB max.message.bytes, carries its reference.
func TestTwentyMebibyteAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	w := newWorld(t, nil)
	c, err := w.sim.CreateMegvii(vendorsim.MegviiSpec{ImageBytes: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	w.register([]ingest.Registration{{Vendor: "megvii", VerificationID: c.BizID}})
	stop, h := w.startHarvester(nil)
	defer stop()
	w.waitLoaded(1, h.Engine())
	w.advance(time.Minute, h.Engine())
	waitDrained(t, h.Engine())
	var resp *contract.Response
	terminal := false
	// Read the topic to its end until both are there (3 minutes at most).
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		w.readTopic(rawTopic, func(m contract.Message) {
			env, _ := contract.FromMessage(m)
			switch env.Type {
			case contract.TypeVendorResponse:
				r, err := contract.ParseResponse(m)
				if err != nil {
					t.Fatal(err)
				}
				if r.Endpoint != megvii.EndpointGetResult {
					return // the signed callback, inline
				}
				if len(m.Value) != 0 || !r.ByReference() {
					t.Fatalf("answer of %d bytes inline, reference %+v", len(m.Value), r.Ref)
				}
				resp = &r
			case contract.TypeHarvestTerminal:
				terminal = true
			}
		})
		if resp != nil && terminal || time.Now().After(deadline) {
			break
		}
	}
	if resp == nil || !terminal {
		t.Fatalf("raw answer %v, terminal %v", resp != nil, terminal)
	}
	rc, err := w.answers.Get(context.Background(), resp.Ref.Key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	if err := resp.Ref.Check(body); err != nil || len(body) < 20<<20 {
		t.Fatalf("stored answer of %d bytes: %v", len(body), err)
	}
	r, err := megvii.ParseResult(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range r.Images.Names() {
		d, _ := megvii.ParseDataURI(r.Images[n])
		img, err := d.Decode()
		if err != nil || len(img) < 5<<20 {
			t.Fatalf("%s: %d bytes, %v", n, len(img), err)
		}
	}
	if st := w.sim.Stats(); st.MegviiServed != 1 || st.MegviiServedTwice != 0 {
		t.Fatalf("sim %+v", st)
	}
}
