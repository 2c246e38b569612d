package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// megviiWithBizNo is a harvested Megvii verification of bizNo.
func megviiWithBizNo(t testing.TB, id, bizNo string, seed int) (contract.Terminal, contract.Response) {
	r := response(contract.Megvii, id, "get_result", mustJSON(t, map[string]any{"request_id": "r-" + id, "status": "OK",
		"biz_info": map[string]any{"biz_id": id, "biz_no": bizNo}, "liveness_result": map[string]any{"result": "PASS"},
		"images": map[string]any{"image_best": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(testJPEG(t, seed))}}))
	term := terminal(contract.Megvii, id, contract.OutcomeHarvested)
	term.BizNo = bizNo
	return term, r
}

func readEntry(t *testing.T, b objstore.Bucket, key string) (IndexEntry, []byte) {
	t.Helper()
	body := get(t, b, key)
	e, err := ParseIndexEntry(body)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return e, body
}

// indexContract is what the index must hold in every Bucket: for each
// record an entry by id and one by biz_no, the same bytes, naming the
// stored record, evidence document and media with their SHA-256; a prefix
// per biz_no that lists every verification of it; writes that are
// idempotent when a terminal is processed again.
func indexContract(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	clk := clock.NewSim(t0.Add(time.Hour), 0, nil)
	bizNo := "loan/2026 #7" // characters a key must not carry as they are
	var recs []contract.Record
	for i, id := range []string{"ix-1", "ix-2"} {
		term, r := megviiWithBizNo(t, id, bizNo, 20+i)
		recs = append(recs, archive(t, simArchiver(t, b, clk, nil), term, r))
	}
	t.Run("an entry by id and by biz_no per record", func(t *testing.T) {
		for _, rec := range recs {
			e, body := readEntry(t, b, IndexKey(rec.Vendor, rec.VerificationID))
			e2, body2 := readEntry(t, b, BizNoIndexKey(bizNo, rec.Vendor, rec.VerificationID))
			if !bytes.Equal(body, body2) {
				t.Fatalf("the entries differ:\n%s\n%s", body, body2)
			}
			if e.BizNo != bizNo || e.RecordID != contract.RecordID(rec.Vendor, rec.VerificationID) || e.Outcome != rec.Outcome || e2.VerificationID != rec.VerificationID {
				t.Fatalf("entry %+v", e)
			}
			if len(e.Media) != 1 || e.Media[0] != rec.Media[0].ObjectRef {
				t.Fatalf("entry media %+v, record media %+v", e.Media, rec.Media)
			}
			for _, ref := range append([]contract.ObjectRef{e.Evidence, e.Record}, e.Media...) {
				sum := sha256.Sum256(get(t, b, ref.Key))
				if hex.EncodeToString(sum[:]) != ref.SHA256 {
					t.Fatalf("%s does not match its entry", ref.Key)
				}
			}
			stored, _ := json.Marshal(rec)
			if !bytes.Equal(get(t, b, e.Record.Key), stored) {
				t.Fatal("the stored record is not the published one")
			}
		}
	})
	t.Run("one prefix lists every verification of a biz_no", func(t *testing.T) {
		keys, err := objstore.Keys(ctx, b, BizNoPrefix(bizNo))
		if err != nil || len(keys) != 2 || !strings.HasSuffix(keys[0], "/megvii/ix-1.json") || !strings.HasSuffix(keys[1], "/megvii/ix-2.json") {
			t.Fatalf("%v %v", keys, err)
		}
		if strings.Contains(keys[0], "loan") {
			t.Fatalf("the key shows the biz_no: %s", keys[0])
		}
		if other, _ := objstore.Keys(ctx, b, BizNoPrefix("loan/2026 #8")); len(other) != 0 {
			t.Fatalf("another biz_no lists %v", other)
		}
	})
	t.Run("processing again writes nothing new", func(t *testing.T) {
		before := listAll(t, b)
		term, r := megviiWithBizNo(t, "ix-1", bizNo, 20)
		again := archive(t, simArchiver(t, b, clk, nil), term, r)
		if !bytes.Equal(mustJSON(t, again), mustJSON(t, recs[0])) {
			t.Fatal("a different record")
		}
		after := listAll(t, b)
		if len(after) != len(before) {
			t.Fatalf("%d objects before, %d after", len(before), len(after))
		}
		for k, v := range before {
			if !bytes.Equal(after[k], v) {
				t.Fatalf("%s changed", k)
			}
		}
	})
}

func listAll(t *testing.T, b objstore.Bucket) map[string][]byte {
	keys, err := objstore.Keys(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, k := range keys {
		m[k] = get(t, b, k)
	}
	return m
}

func TestIndexContractMemory(t *testing.T) { indexContract(t, objstore.NewMemory()) }

func TestIndexContractMinIO(t *testing.T) {
	_, srv := minio(t)
	defer srv.Stop()
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	indexContract(t, b)
}

// failingPrefix refuses every Create under prefix while failing is set,
// and tells how many it refused.
type failingPrefix struct {
	objstore.Bucket
	prefix  string
	mu      sync.Mutex
	failing bool
	refused chan struct{}
}

func (f *failingPrefix) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	f.mu.Lock()
	fail := f.failing && strings.HasPrefix(key, f.prefix)
	f.mu.Unlock()
	if fail {
		select {
		case f.refused <- struct{}{}:
		default:
		}
		return errors.New("store unavailable")
	}
	return f.Bucket.Create(ctx, key, body, size, ct, meta, opts...)
}

// TestRecordWaitsForItsBizNoEntry: while the biz_no entry cannot be
// written, Finish does not return a record (the runner publishes only what
// Finish returns) and writes no by-id entry (which would make re-processing
// publish without the biz_no entry); each failure is counted. Once the
// store works, the record comes with both entries.
func TestRecordWaitsForItsBizNoEntry(t *testing.T) {
	store := &failingPrefix{Bucket: objstore.NewMemory(), prefix: IndexByBizNo, failing: true, refused: make(chan struct{}, 1)}
	reg := prometheus.NewRegistry()
	clk := clock.NewSim(t0.Add(time.Hour), 0, nil)
	a := simArchiver(t, store, clk, reg)
	term, r := megviiWithBizNo(t, "wait-1", "loan-1", 30)
	id := contract.ResponseID(contract.Megvii, "wait-1", "get_result", 0)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := a.ArchiveResponse(ctx, id, r); err != nil {
		t.Fatal(err)
	}
	term.Responses = []string{id}
	raw, _ := json.Marshal(term)
	done := make(chan error, 1)
	go func() {
		_, err := a.Finish(ctx, term, raw)
		done <- err
	}()
	// Four refused tries: Finish is retrying, not done, and the first
	// three have been counted (a try is counted before the next one).
	for range 4 {
		<-store.refused
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Finish returned a record while its biz_no entry could not be written")
	}
	if _, err := store.Attributes(context.Background(), IndexKey(contract.Megvii, "wait-1")); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("by-id entry written before the biz_no entry: %v", err)
	}
	if n := metricstest.Sum(t, reg, "faceharvest_archiver_index_write_failures_total", "index=by_biz_no"); n < 3 {
		t.Fatalf("%v failures counted", n)
	}
	store.mu.Lock()
	store.failing = false
	store.mu.Unlock()
	rec, err := a.Finish(context.Background(), term, raw)
	if err != nil || rec.BizNo != "loan-1" {
		t.Fatalf("%+v %v", rec, err)
	}
	readEntry(t, store, IndexKey(contract.Megvii, "wait-1"))
	readEntry(t, store, BizNoIndexKey("loan-1", contract.Megvii, "wait-1"))
}
