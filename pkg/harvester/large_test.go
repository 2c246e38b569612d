package harvester

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestTwentyMebibyteAnswer: a get_result with three 5 MiB images (about
// 20 MiB of JSON) reaches the raw topic byte for byte.
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.broker.Addr()), kgo.ConsumeTopics(rawTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body []byte
	terminal := false
	for ctx.Err() == nil && (body == nil || !terminal) {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, hd := range r.Headers {
				if hd.Key == contract.HeaderType && string(hd.Value) == contract.TypeVendorResponse {
					body = r.Value
				}
				if hd.Key == contract.HeaderType && string(hd.Value) == contract.TypeHarvestTerminal {
					terminal = true
				}
			}
		})
	}
	if len(body) < 20<<20 || !terminal {
		t.Fatalf("raw answer of %d bytes, terminal %v", len(body), terminal)
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
