package archiver

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// runner starts a Runner of group "hold" on store and returns its archiver
// and its stop.
func runner(t *testing.T, brokers []string, store objstore.Bucket, hold time.Duration) (*Archiver, func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Store, cfg.SpoolDir = store, t.TempDir()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rc := testRunConfig(brokers, "hold")
	rc.CommitInterval, rc.HoldLimit = 20*time.Millisecond, hold
	r, err := NewRunner(ctx, rc, a)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	return a, func() { cancel(); <-done }
}

// committed is the group's committed offset of the raw topic's partition p.
func committed(t *testing.T, brokers []string, p int32) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "hold"
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = rawTopic
	rt.Partitions = []int32{p}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range resp.Topics {
		for _, pp := range tp.Partitions {
			if pp.Partition == p {
				return pp.Offset
			}
		}
	}
	return -1
}

// holdWorld is a one-partition broker, an in-memory store and a writer of
// the raw topic, all closed when the test ends.
func holdWorld(t *testing.T) ([]string, *objstore.Memory, *bus.Writer) {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{rawTopic, resultsTopic, dlqTopic}, MaxMessageBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	brokers := []string{b.Addr()}
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(brokers...), Topic: rawTopic, BatchBytes: 64 << 20})
	t.Cleanup(func() { _ = w.Close() })
	return brokers, objstore.NewMemory(), w
}

// An answer without links is kept in memory only (no part is written) and
// its offset is held until its record is published: an archiver that stops
// between the answer and the terminal leaves the answer to the next one,
// whose record lacks nothing.
func TestHeldAnswerSurvivesAStop(t *testing.T) {
	brokers, store, w := holdWorld(t)
	ms := megviiMessages(t, "held-1", 1)
	produce(t, w, ms[0]) // the answer only
	first, stop := runner(t, brokers, store, time.Hour)
	waitFor(t, func() bool { n, _ := objstore.Keys(context.Background(), store, "megvii/2026/"); return len(n) == 3 }, "the answer's images")
	stop() // a stopping partition commits what is done once more before it returns
	first.mu.Lock()
	n := len(first.parts)
	first.mu.Unlock()
	if n != 0 {
		t.Errorf("the stopped archiver still holds %d parts of a partition it gave up", n)
	}
	if parts, _ := objstore.Keys(context.Background(), store, "megvii/responses/"); len(parts) != 0 {
		t.Fatalf("a part was written for an answer without links: %v", parts)
	}
	if off := committed(t, brokers, 0); off > 0 {
		t.Fatalf("the held answer's offset was committed (%d)", off)
	}
	produce(t, w, ms[1]) // its terminal, to the next archiver
	_, stop = runner(t, brokers, store, time.Hour)
	defer stop()
	rec := readRecord(t, brokers, contract.RecordID(contract.Megvii, "held-1"))
	if len(rec.Problems) != 0 || len(rec.Media) != 3 || rec.Media[0].Status != contract.MediaStored {
		t.Fatalf("record after the stop: problems %q media %+v", rec.Problems, rec.Media)
	}
	waitFor(t, func() bool { return committed(t, brokers, 0) == 2 }, "both offsets committed after the record")
}

// An answer whose terminal does not come within HoldLimit gets its part
// stored, and its offset goes.
func TestHeldAnswerStoredAfterHoldLimit(t *testing.T) {
	brokers, store, w := holdWorld(t)
	produce(t, w, megviiMessages(t, "held-2", 2)[0])
	_, stop := runner(t, brokers, store, 200*time.Millisecond)
	defer stop()
	waitFor(t, func() bool {
		p, _ := objstore.Keys(context.Background(), store, "megvii/responses/")
		return len(p) == 1
	}, "the part stored after the hold limit")
	waitFor(t, func() bool { return committed(t, brokers, 0) == 1 }, "the offset committed")
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readRecord reads the results topic to its end until it holds a record
// with ce_id id, for 3 minutes at most, and returns the first such record.
func readRecord(t *testing.T, brokers []string, id string) contract.Record {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		var found *contract.Record
		readTopic(t, brokers, resultsTopic, nil, func(m contract.Message) {
			if v, _ := m.Header(contract.HeaderID); found == nil && string(v) == id {
				var rec contract.Record
				if err := json.Unmarshal(m.Value, &rec); err == nil {
					found = &rec
				}
			}
		})
		if found != nil {
			return *found
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record %s", id)
		}
	}
}
