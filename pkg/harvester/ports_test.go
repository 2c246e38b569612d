package harvester

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// The engine's ports (StateStore, Recorder, Publisher) each have one
// contract suite below, run against the in-memory fake the unit tests use
// and against the Kafka implementation on the embedded broker: a behaviour
// the engine relies on is checked on both, so the fakes cannot drift from
// the real thing unnoticed.

// memRecorder is the Recorder over a memRaw: one partition, whose offsets
// are the indexes of the published messages.
type memRecorder struct{ raw *memRaw }

func (r *memRecorder) Mark(_ context.Context, _ string) (int, int64, error) {
	r.raw.mu.Lock()
	defer r.raw.mu.Unlock()
	return 0, int64(len(r.raw.msgs)), nil
}

func (r *memRecorder) Find(_ context.Context, key string, partition int, offset int64, ids []string) ([]contract.Message, error) {
	r.raw.mu.Lock()
	defer r.raw.mu.Unlock()
	if partition != 0 {
		return nil, fmt.Errorf("no partition %d", partition)
	}
	var out []contract.Message
	for _, m := range r.raw.msgs[min(max(offset, 0), int64(len(r.raw.msgs))):] {
		if string(m.Key) != key {
			continue
		}
		for _, h := range m.Headers {
			if h.Key == contract.HeaderID && contains(ids, string(h.Value)) {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// read returns the published messages of key, in order (the Publisher
// suite's reader for the fake).
func (p *memRaw) read(key string) []contract.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []contract.Message
	for _, m := range p.msgs {
		if string(m.Key) == key {
			out = append(out, m)
		}
	}
	return out
}

// load returns what the fake holds in partition p.
func (s *memStore) load(p int) map[string]*StateRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*StateRecord{}
	for k, r := range s.recs {
		if s.parts[k] == p {
			out[k] = r
		}
	}
	return out
}

const (
	portsRaw   = "ports.raw"
	portsState = "ports.state"
)

// portsBroker starts an embedded broker with the raw and state topics as
// the integration tests configure them (three partitions, large messages,
// the state topic compacted).
func portsBroker(t *testing.T) bus.Cluster {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: 3, Topics: []string{portsRaw, portsState}, MaxMessageBytes: 64 << 20, Compacted: []string{portsState}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return bus.Plain(b.Addr())
}

// kafkaRawWriter is the raw topic's writer as New builds it.
func kafkaRawWriter(t *testing.T, cl bus.Cluster) *bus.Writer {
	w := bus.NewWriter(bus.WriterConfig{Cluster: cl, Topic: portsRaw, BatchBytes: 64 << 20})
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func portsCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func response(id string, attempt int, body string) contract.Message {
	return contract.Response{Vendor: contract.Megvii, VerificationID: id, Endpoint: megvii.EndpointGetResult, HTTPStatus: 200, Attempt: attempt,
		FetchedAt: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC), ContentType: contract.ContentTypeJSON, Body: []byte(body)}.Message("/ports")
}

func terminal(id string) contract.Message {
	return contract.Terminal{Vendor: contract.Megvii, VerificationID: id, Outcome: contract.OutcomeHarvested,
		DecidedAt: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)}.Message("/ports")
}

func headerID(m contract.Message) string {
	for _, h := range m.Headers {
		if h.Key == contract.HeaderID {
			return string(h.Value)
		}
	}
	return ""
}

// stateStoreSuite: a Save returns once the record is durable in its
// partition; the last record saved for a key is what a restore finds; a nil
// record deletes the key; a closed marker survives as one.
func stateStoreSuite(t *testing.T, newStore func(t *testing.T) (StateStore, func(p int) map[string]*StateRecord)) {
	ctx := portsCtx(t)
	s, load := newStore(t)
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	issued := now.Add(-time.Hour)
	st := func(id, biz string) *StateRecord {
		return &StateRecord{State: &schedule.State{Vendor: contract.Megvii, ID: id, BizNo: biz, FirstSeen: issued, IssuedAt: &issued, NextAt: now.Add(time.Hour),
			Intent: &schedule.Intent{Attempt: 1, At: now, RawPartition: 2, RawOffset: 41}}}
	}
	closedAt := now.Add(time.Minute)
	saves := []struct {
		p   int
		key string
		r   *StateRecord
	}{
		{1, "megvii:a", st("a", "first")},
		{1, "megvii:a", st("a", "second")}, // the last one wins
		{1, "megvii:gone", st("gone", "x")},
		{1, "megvii:gone", nil}, // a tombstone
		{2, "megvii:b", st("b", "other partition")},
		{1, "megvii:c", &StateRecord{ClosedAt: &closedAt}},
	}
	for _, w := range saves {
		if err := s.Save(ctx, w.p, w.key, w.r); err != nil {
			t.Fatalf("save %s: %v", w.key, err)
		}
	}
	want := map[int]map[string]*StateRecord{0: {}, 1: {"megvii:a": st("a", "second"), "megvii:c": {ClosedAt: &closedAt}}, 2: {"megvii:b": st("b", "other partition")}}
	for p, w := range want {
		got := load(p)
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(w)
		if !bytes.Equal(gb, wb) {
			t.Errorf("partition %d holds %s, want %s", p, gb, wb)
		}
	}
}

// publisherSuite: a WriteMessages returns once its messages are durable;
// each key's messages come back in the order written, key, value and
// headers byte for byte, a large answer included.
func publisherSuite(t *testing.T, newPub func(t *testing.T) (Publisher, func(key string) []contract.Message)) {
	ctx := portsCtx(t)
	pub, read := newPub(t)
	large := `{"status":"OK","image":"` + strings.Repeat("A", 3<<20) + `"}`
	batch := []contract.Message{response("p1", 1, `{"status":"OK"}`), response("p2", 1, `{"n":1}`), response("p1", 2, large)}
	if err := pub.WriteMessages(ctx, batch...); err != nil {
		t.Fatal(err)
	}
	if err := pub.WriteMessages(ctx, terminal("p1")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]contract.Message{"megvii:p1": {batch[0], batch[2], terminal("p1")}, "megvii:p2": {batch[1]}} {
		got := read(key)
		if len(got) != len(want) {
			t.Fatalf("%s: %d messages, want %d", key, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i].Key, want[i].Key) || !bytes.Equal(got[i].Value, want[i].Value) || !sameHeaders(got[i].Headers, want[i].Headers) {
				t.Errorf("%s message %d: %s %.80q %v, want %s %.80q %v", key, i, got[i].Key, got[i].Value, got[i].Headers, want[i].Key, want[i].Value, want[i].Headers)
			}
		}
	}
}

func sameHeaders(a, b []contract.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// recorderSuite: Mark names where a key's raw partition ends; Find returns,
// in order, the key's messages with one of the asked ids written since that
// mark: not those written before, nor another key's, nor other ids.
func recorderSuite(t *testing.T, newRaw func(t *testing.T) (Publisher, Recorder)) {
	ctx := portsCtx(t)
	pub, rec := newRaw(t)
	const key = "megvii:r1"
	p0, off0, err := rec.Mark(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if found, err := rec.Find(ctx, key, p0, off0, []string{contract.TerminalID(contract.Megvii, "r1")}); err != nil || len(found) != 0 {
		t.Fatalf("found %d in an empty range: %v", len(found), err)
	}
	before := response("r1", 1, `{"before":true}`)
	if err := pub.WriteMessages(ctx, before); err != nil {
		t.Fatal(err)
	}
	p, off, err := rec.Mark(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if p != p0 || off <= off0 {
		t.Fatalf("mark %d/%d after a write, %d/%d before", p, off, p0, off0)
	}
	answer, other, unasked, term := response("r1", 2, `{"status":"OK"}`), response("r2", 2, `{"status":"OK"}`), response("r1", 3, `{}`), terminal("r1")
	if err := pub.WriteMessages(ctx, answer, other, unasked, term); err != nil {
		t.Fatal(err)
	}
	ids := []string{headerID(before), headerID(answer), contract.ResponseID(contract.Megvii, "r2", megvii.EndpointGetResult, 2), headerID(term)}
	found, err := rec.Find(ctx, key, p, off, ids)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range found {
		got = append(got, headerID(m))
	}
	if want := []string{headerID(answer), headerID(term)}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("found %v, want %v", got, want)
	}
	// From the first mark, the answer before the second is found too.
	found, err = rec.Find(ctx, key, p0, off0, ids[:1])
	if err != nil || len(found) != 1 || !bytes.Equal(found[0].Value, before.Value) {
		t.Fatalf("from the first mark: %d found, %v", len(found), err)
	}
}

func TestStateStoreContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		stateStoreSuite(t, func(*testing.T) (StateStore, func(int) map[string]*StateRecord) {
			s := &memStore{}
			return s, s.load
		})
	})
	t.Run("kafka", func(t *testing.T) {
		stateStoreSuite(t, func(t *testing.T) (StateStore, func(int) map[string]*StateRecord) {
			cl := portsBroker(t)
			s := NewKafkaStateStore(cl, portsState)
			t.Cleanup(func() { _ = s.W.Close() })
			// Read back as a restore does.
			h := &Harvester{cfg: Config{Kafka: cl, StateTopic: portsState}, log: slog.New(slog.DiscardHandler)}
			return s, func(p int) map[string]*StateRecord {
				recs, err := h.restore(portsCtx(t), p)
				if err != nil {
					t.Fatalf("restore %d: %v", p, err)
				}
				return recs
			}
		})
	})
}

func TestPublisherContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		publisherSuite(t, func(*testing.T) (Publisher, func(string) []contract.Message) {
			raw := &memRaw{}
			return raw, raw.read
		})
	})
	t.Run("kafka", func(t *testing.T) {
		publisherSuite(t, func(t *testing.T) (Publisher, func(string) []contract.Message) {
			cl := portsBroker(t)
			return kafkaRawWriter(t, cl), func(key string) []contract.Message {
				var out []contract.Message
				for p := range 3 {
					err := bus.ReadRange(portsCtx(t), cl, portsRaw, p, -1, func(m contract.Message) {
						if string(m.Key) == key {
							out = append(out, m)
						}
					})
					if err != nil {
						t.Fatalf("read %d: %v", p, err)
					}
				}
				return out
			}
		})
	})
}

func TestRecorderContract(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		recorderSuite(t, func(*testing.T) (Publisher, Recorder) {
			raw := &memRaw{}
			return raw, &memRecorder{raw: raw}
		})
	})
	t.Run("kafka", func(t *testing.T) {
		recorderSuite(t, func(t *testing.T) (Publisher, Recorder) {
			cl := portsBroker(t)
			rec, err := NewKafkaRecorder(portsCtx(t), cl, portsRaw)
			if err != nil {
				t.Fatal(err)
			}
			return kafkaRawWriter(t, cl), rec
		})
	})
}
