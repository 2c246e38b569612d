package ledger

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

const (
	leavesTopic      = "test.ledger.leaves"
	checkpointsTopic = "test.ledger.checkpoints"
)

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 2 minutes for %s; saw %s", what, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// indexEntry stores verification i's by-id index entry and returns its
// leaf message.
func indexEntry(t *testing.T, store objstore.Bucket, i int) contract.Message {
	t.Helper()
	id := fmt.Sprintf("v-%05d", i)
	e := archiver.IndexEntry{Schema: archiver.IndexSchema, Vendor: contract.Megvii, VerificationID: id, RecordID: contract.RecordID(contract.Megvii, id),
		Outcome: contract.OutcomeHarvested, DecidedAt: time.Date(2026, 7, 1, 0, 0, i, 0, time.UTC),
		Evidence: contract.ObjectRef{Key: "megvii/2026/07/01/evidence/" + id + ".json", SHA256: fmt.Sprintf("%064x", i)},
		Record:   contract.ObjectRef{Key: "megvii/2026/07/01/records/" + id + ".json", SHA256: fmt.Sprintf("%064x", i+1)}}
	body, _ := json.Marshal(e)
	key := archiver.IndexKey(contract.Megvii, id)
	if err := put(context.Background(), store, key, body, contract.ContentTypeJSON); err != nil {
		t.Fatal(err)
	}
	env, err := contract.LedgerLeaf{IndexKey: key, EntrySHA256: EntrySHA256(body), IndexedAt: time.Now()}.Envelope(contract.Megvii, id, "/test")
	if err != nil {
		t.Fatal(err)
	}
	return env.Message()
}

type world struct {
	signer   note.Signer
	verifier note.Verifier
	brokers  []string
	store    *objstore.Memory
	leaves   *bus.Writer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{leavesTopic, checkpointsTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	w := &world{brokers: []string{b.Addr()}, store: objstore.NewMemory()}
	w.signer, w.verifier = testKeys(t, testOrigin)
	w.leaves = bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(w.brokers...), Topic: leavesTopic})
	t.Cleanup(func() { _ = w.leaves.Close() })
	return w
}

func (w *world) produce(t *testing.T, msgs ...contract.Message) {
	t.Helper()
	if err := w.leaves.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// integrator starts an integrator; stop ends it and waits for it.
func (w *world) integrator(t *testing.T) (stop func()) {
	t.Helper()
	return w.integratorWith(t, nil)
}

// integratorWith starts an integrator whose configuration set changes.
func (w *world) integratorWith(t *testing.T, set func(*IntegratorConfig)) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Open(ctx, Config{Bucket: w.store, Signer: w.signer, Verifier: w.verifier})
	if err != nil {
		t.Fatal(err)
	}
	cw := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(w.brokers...), Topic: checkpointsTopic})
	cfg := IntegratorConfig{Kafka: bus.Plain(w.brokers...), GroupID: "test-ledger", LeavesTopic: leavesTopic, Log: l, Store: w.store,
		BatchSize: 40, Interval: 50 * time.Millisecond, Checkpoints: cw, Metrics: NewMetrics(nil), SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
		RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond}
	if set != nil {
		set(&cfg)
	}
	in, err := NewIntegrator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = in.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait(); _ = cw.Close() }) }
	t.Cleanup(stop)
	return stop
}

// size is the stored checkpoint's tree size.
func (w *world) size(t *testing.T) (bool, int64, string) {
	cp, _, err := Reader{Bucket: w.store}.Checkpoint(context.Background(), w.verifier)
	if err != nil {
		return false, 0, err.Error()
	}
	return true, cp.Size, fmt.Sprintf("tree size %d", cp.Size)
}

// exactlyOnce checks that the log holds entries 0..n-1, each once.
func (w *world) exactlyOnce(t *testing.T, n int) {
	t.Helper()
	ctx := context.Background()
	r := Reader{Bucket: w.store}
	cp, _, err := r.Checkpoint(ctx, w.verifier)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	if err := r.Entries(ctx, cp, 0, cp.Size, func(i int64, data []byte) error {
		e, err := archiver.ParseIndexEntry(data)
		if err != nil {
			return err
		}
		if j, dup := seen[e.VerificationID]; dup {
			return fmt.Errorf("%s is leaf %d and %d", e.VerificationID, j, i)
		}
		seen[e.VerificationID] = i
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != n || cp.Size != int64(n) {
		t.Fatalf("%d distinct entries in a tree of %d, want %d", len(seen), cp.Size, n)
	}
}

// Leaves are integrated in batches into signed checkpoints, published on
// the checkpoints topic; repeats (an archiver that re-processed its
// terminals) are one leaf; a successor integrator goes on where the first
// stopped.
func TestIntegratorAppendsEachEntryOnce(t *testing.T) {
	w := newWorld(t)
	var first []contract.Message
	for i := range 100 {
		first = append(first, indexEntry(t, w.store, i))
	}
	w.produce(t, first...)
	w.produce(t, first[10:30]...) // an archiver's crash re-sends some
	stop := w.integrator(t)
	waitFor(t, "100 leaves", func() (bool, string) { ok, n, saw := w.size(t); return ok && n == 100, saw })
	stop()
	var second []contract.Message
	for i := 100; i < 150; i++ {
		second = append(second, indexEntry(t, w.store, i))
	}
	w.produce(t, append(second, first[90:]...)...)
	w.integrator(t)
	waitFor(t, "150 leaves", func() (bool, string) { ok, n, saw := w.size(t); return ok && n == 150, saw })
	w.exactlyOnce(t, 150)

	// Every checkpoint was published, the last one the stored one.
	var last []byte
	if err := bus.ReadRange(context.Background(), bus.Plain(w.brokers...), checkpointsTopic, 0, 0, func(m contract.Message) { last = m.Value }); err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(last, w.verifier)
	if err != nil || cp.Size != 150 {
		t.Fatalf("last published checkpoint %+v %v", cp, err)
	}
}

// Two integrators running at once (a rollout, a stale pod) leave one log
// with every entry once.
func TestTwoIntegratorsOneLog(t *testing.T) {
	w := newWorld(t)
	w.integrator(t)
	w.integrator(t)
	var msgs []contract.Message
	for i := range 120 {
		msgs = append(msgs, indexEntry(t, w.store, i))
	}
	for i := 0; i < len(msgs); i += 30 {
		w.produce(t, msgs[i:i+30]...)
	}
	waitFor(t, "120 leaves", func() (bool, string) { ok, n, saw := w.size(t); return ok && n == 120, saw })
	w.exactlyOnce(t, 120)
}

// An unreachable time-stamping authority does not stop the log: the
// checkpoint is published without a token, counted, and the next
// checkpoint is stamped once the TSA answers again.
func TestIntegratorOutlivesItsTSA(t *testing.T) {
	w := newWorld(t)
	tsa := startTSA(t, "Test TSA")
	tsa.Down.Store(true)
	m := NewMetrics(nil)
	w.integratorWith(t, func(c *IntegratorConfig) {
		c.Metrics, c.TSA, c.TSACertificates, c.TSATimeout = m, TSA{URL: tsa.URL}, []*x509.Certificate{tsa.Root}, time.Minute
	})
	var msgs []contract.Message
	for i := range 80 {
		msgs = append(msgs, indexEntry(t, w.store, i))
	}
	failed := func() float64 { return testutil.ToFloat64(m.timestampFailures.WithLabelValues("tsa")) }
	w.produce(t, msgs[:40]...)
	waitFor(t, "checkpoint 40, its time stamp failed", func() (bool, string) {
		ok, n, saw := w.size(t)
		return ok && n == 40 && failed() >= 1, fmt.Sprintf("%s, %v failed stamps", saw, failed())
	})
	r := Reader{Bucket: w.store}
	if token, err := r.Timestamp(context.Background(), 40); err != nil || token != nil {
		t.Fatalf("checkpoint 40 has a token %x (%v) from a TSA that was down", token, err)
	}
	if got := testutil.ToFloat64(m.timestamps); got != 0 {
		t.Fatalf("%v time stamps counted while the TSA was down", got)
	}
	tsa.Down.Store(false)
	w.produce(t, msgs[40:]...)
	waitFor(t, "checkpoint 80 time-stamped", func() (bool, string) {
		token, err := r.Timestamp(context.Background(), 80)
		return token != nil, fmt.Sprintf("token %d bytes, %v; %v stamps", len(token), err, testutil.ToFloat64(m.timestamps))
	})
	cp, signed, err := r.Checkpoint(context.Background(), w.verifier)
	if err != nil || cp.Size != 80 {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	token, _ := r.Timestamp(context.Background(), 80)
	pr, err := CheckTimestamp(token, signed, []*x509.Certificate{tsa.Root})
	if err != nil || !pr.Trusted || !pr.Time.Equal(tsa.At) {
		t.Fatalf("checkpoint 80's token: %+v %v", pr, err)
	}
	waitFor(t, "the stamp counted", func() (bool, string) {
		got := testutil.ToFloat64(m.timestamps)
		return got >= 1, fmt.Sprintf("%v stamps", got)
	})
}
