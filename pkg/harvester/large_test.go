package harvester

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/bus"
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
	var body []byte
	terminal := false
	// Read the topic to its end until both are there (20 s at most).
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		readToEnd(t, w.broker.Addr(), rawTopic, func(r *kgo.Record) {
			for _, hd := range r.Headers {
				if hd.Key == contract.HeaderType && string(hd.Value) == contract.TypeVendorResponse {
					body = r.Value
				}
				if hd.Key == contract.HeaderType && string(hd.Value) == contract.TypeHarvestTerminal {
					terminal = true
				}
			}
		})
		if body != nil && terminal || time.Now().After(deadline) {
			break
		}
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

// readToEnd calls fn for every record of topic up to the end each partition
// has when the read begins, reading with franz-go for 3 minutes at most (a
// second client beside kafka-go, which bus.ReadRange uses: the 20 MiB
// answer here reads the same through both).
func readToEnd(t *testing.T, broker, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bc := bus.Plain(broker)
	parts, err := bus.PartitionCount(ctx, bc, topic)
	if err != nil {
		t.Fatal(err)
	}
	from, ends := map[int32]kgo.Offset{}, map[int32]int64{}
	for p := range parts {
		first, end, err := bus.PartitionBounds(ctx, bc, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if end > first {
			from[int32(p)], ends[int32(p)] = kgo.NewOffset().At(first), end
		}
	}
	if len(ends) == 0 {
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s not read to its end within 3 minutes (ends left: %v)", topic, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := ends[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			fn(r)
			if r.Offset+1 >= end {
				delete(ends, r.Partition)
			}
		})
	}
}
