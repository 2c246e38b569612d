package archiver

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// closedRetention is the harvester's default --closed-retention: after it a
// replayed callback or landing starts a new harvest of a closed verification.
const closedRetention = 8 * 24 * time.Hour

// replayTerminal is what such a new harvest ends with: "lost", decided at
// now, after one answer of the vendor that no longer has the result.
func replayTerminal(t testing.TB, id string, now time.Time) (contract.Terminal, contract.Response) {
	r := response(contract.Megvii, id, "get_result", []byte(`{"error_message":"BIZ_TOKEN_DENIED","request_id":"late"}`))
	r.HTTPStatus, r.ErrorClass, r.FetchedAt, r.Attempt = 400, "not_found", now, 0
	term := terminal(contract.Megvii, id, contract.OutcomeLost)
	term.DecidedAt, term.Reason = now, "result no longer available"
	return term, r
}

func simArchiver(t testing.TB, store objstore.Bucket, clk *clock.Sim, reg prometheus.Registerer) *Archiver {
	cfg := DefaultConfig()
	cfg.Store, cfg.SpoolDir, cfg.RetryMin, cfg.RetryMax, cfg.Now, cfg.Metrics = store, t.TempDir(), time.Millisecond, 5*time.Millisecond, clk.Now, NewMetrics(reg)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestReplayAfterRetentionRepublishesTheFirstRecord: a verification
// harvested, then, after the harvester's closed retention, replayed and
// ended "lost" with a later decision date. The second record is the first,
// byte for byte; the replay's evidence is kept beside the first's, and the
// replay is counted.
func TestReplayAfterRetentionRepublishesTheFirstRecord(t *testing.T) {
	store := objstore.NewMemory()
	clk := clock.NewSim(t0.Add(time.Hour), 0, nil)
	reg := prometheus.NewRegistry()
	a := simArchiver(t, store, clk, reg)
	ms := megviiMessages(t, "replay-1", 4)
	resp, err := contract.ParseResponse(ms[0])
	if err != nil {
		t.Fatal(err)
	}
	first := archive(t, a, terminal(contract.Megvii, "replay-1", contract.OutcomeHarvested), resp)
	if first.Outcome != contract.OutcomeHarvested {
		t.Fatalf("first record: %s", first.Outcome)
	}
	clk.Advance(closedRetention + time.Hour)
	term, late := replayTerminal(t, "replay-1", clk.Now())
	for _, arch := range []*Archiver{a, simArchiver(t, store, clk, nil)} { // this process, and a restarted one
		second := archive(t, arch, term, late)
		if !bytes.Equal(mustJSON(t, first), mustJSON(t, second)) {
			t.Fatalf("the replay made another record:\n%s\n%s", mustJSON(t, first), mustJSON(t, second))
		}
	}
	if n := metricValue(t, reg, "faceharvest_archiver_replays_total"); n != 1 {
		t.Errorf("replays counted: %v", n)
	}
	// The index names the first evidence document and the stored record.
	var idx IndexEntry
	if err := json.Unmarshal(get(t, store, IndexKey(contract.Megvii, "replay-1")), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Evidence.Key != first.Evidence.Key || idx.RecordID != contract.RecordID(contract.Megvii, "replay-1") || idx.Outcome != contract.OutcomeHarvested {
		t.Errorf("index entry %+v", idx)
	}
	if stored := get(t, store, idx.Record.Key); !bytes.Equal(stored, mustJSON(t, first)) {
		t.Errorf("stored record differs from the published one:\n%s", stored)
	}
	// Nothing is thrown away: the replay's evidence, with its answer, is
	// stored beside the first evidence document.
	replays, _ := objstore.Keys(context.Background(), store, strings.TrimSuffix(first.Evidence.Key, ".json")+"/")
	if len(replays) != 1 {
		t.Fatalf("replay evidence: %v", replays)
	}
	ev := get(t, store, replays[0])
	if !strings.Contains(string(ev), `"outcome":"lost"`) || !strings.Contains(string(ev), "BIZ_TOKEN_DENIED") {
		t.Errorf("replay evidence: %s", ev)
	}
}

func get(t testing.TB, store objstore.Bucket, key string) []byte {
	t.Helper()
	rc, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayPublishesTheStoredRecord runs the same through Kafka: both
// published records of the verification are the same bytes under the same
// ce_id.
func TestReplayPublishesTheStoredRecord(t *testing.T) {
	brokers, store, w := holdWorld(t)
	clk := clock.NewSim(t0.Add(time.Hour), 0, nil)
	a := simArchiver(t, store, clk, nil)
	startRunner(t, brokers, a, "replay")
	id := contract.RecordID(contract.Megvii, "replay-2")
	produce(t, w, megviiMessages(t, "replay-2", 5)...)
	first := publishedRecords(t, brokers, id, 1)[0]
	clk.Advance(closedRetention + time.Hour)
	term, late := replayTerminal(t, "replay-2", clk.Now())
	term.Responses = []string{contract.ResponseID(contract.Megvii, "replay-2", "get_result", late.Attempt)}
	produce(t, w, late.Message("/harvester"), term.Message("/harvester"))
	both := publishedRecords(t, brokers, id, 2)
	if !bytes.Equal(both[0], first) || !bytes.Equal(both[1], first) {
		t.Fatalf("the replay published another record:\n%s\n%s", both[0], both[1])
	}
}

// crashStore stands for a process that dies right after a write: once a
// Create of a key with prefix succeeds, it cancels the work's context and
// refuses every later call.
type crashStore struct {
	objstore.Bucket
	prefix  string
	mu      sync.Mutex
	cancel  context.CancelFunc
	crashed bool
}

func (c *crashStore) down() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.crashed
}

func (c *crashStore) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	if c.down() {
		return context.Canceled
	}
	err := c.Bucket.Create(ctx, key, body, size, ct, meta, opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil && c.cancel != nil && strings.HasPrefix(key, c.prefix) {
		c.cancel()
		c.crashed = true
	}
	return err
}

func (c *crashStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if c.down() {
		return nil, context.Canceled
	}
	return c.Bucket.Get(ctx, key)
}

func (c *crashStore) Attributes(ctx context.Context, key string) (objstore.Attrs, error) {
	if c.down() {
		return objstore.Attrs{}, context.Canceled
	}
	return c.Bucket.Attributes(ctx, key)
}

// TestCrashBetweenStepsEndsInOneRecord: the record is made in four writes
// (evidence document, record, biz_no index entry, index entry) before it
// is published. A
// process that dies after any of them leaves its terminal uncommitted; the
// next one re-processes it and publishes the record a clean run publishes,
// and a replay after the retention publishes it again.
func TestCrashBetweenStepsEndsInOneRecord(t *testing.T) {
	ms := megviiMessages(t, "crash-1", 6)
	resp, err := contract.ParseResponse(ms[0])
	if err != nil {
		t.Fatal(err)
	}
	respID := contract.ResponseID(contract.Megvii, "crash-1", "get_result", 0)
	term := terminal(contract.Megvii, "crash-1", contract.OutcomeHarvested)
	clean := archive(t, simArchiver(t, objstore.NewMemory(), clock.NewSim(t0.Add(time.Hour), 0, nil), nil), term, resp)
	for _, step := range []struct {
		name, prefix string
		last         bool // Finish is done: the crash comes before the publish
	}{
		{"after the evidence document", "megvii/2026/11/23/evidence/", false},
		{"after the record", "megvii/2026/11/23/records/", false},
		{"after the biz_no index entry", "index/v1/by-biz-no/", false},
		{"after the index entry", "index/v1/by-id/", true},
	} {
		t.Run(step.name, func(t *testing.T) {
			clk := clock.NewSim(t0.Add(time.Hour), 0, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			store := &crashStore{Bucket: objstore.NewMemory(), prefix: step.prefix, cancel: cancel}
			a := simArchiver(t, store, clk, nil)
			if _, err := a.ArchiveResponse(ctx, respID, resp); err != nil {
				t.Fatal(err)
			}
			tt := term
			tt.Responses = []string{respID}
			raw, _ := json.Marshal(tt)
			if _, err := a.Finish(ctx, tt, raw); err == nil && !step.last {
				t.Fatal("the crash did not stop Finish")
			}
			clk.Advance(time.Minute) // the restart
			store.mu.Lock()
			store.crashed, store.cancel = false, nil // the restarted process
			store.mu.Unlock()
			again := archive(t, simArchiver(t, store, clk, nil), term, resp)
			if !bytes.Equal(mustJSON(t, again), mustJSON(t, clean)) {
				t.Fatalf("re-processed after the crash:\n%s\nclean run:\n%s", mustJSON(t, again), mustJSON(t, clean))
			}
			clk.Advance(closedRetention + time.Hour)
			lt, late := replayTerminal(t, "crash-1", clk.Now())
			if replay := archive(t, simArchiver(t, store, clk, nil), lt, late); !bytes.Equal(mustJSON(t, replay), mustJSON(t, clean)) {
				t.Fatalf("replay after the crash:\n%s", mustJSON(t, replay))
			}
			for _, prefix := range []string{"index/v1/by-id/", "index/v1/by-biz-no/", "megvii/2026/11/23/records/"} {
				if keys, _ := objstore.Keys(context.Background(), store, prefix); len(keys) != 1 {
					t.Errorf("%s: %v", prefix, keys)
				}
			}
		})
	}
}
