package audit_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// TestReplayCorrectionHasItsOwnID: a replay whose re-derived record equals
// the published one publishes it under the record's ce_id; one whose record
// differs (here: unmasked, as an archiver run with --unmask-identity would
// have made it) publishes it under a ce_id of its own, the same on every
// replay, so that a consumer deduplicating on ce_id gets the correction
// once. Neither touches the stored record or the index.
func TestReplayCorrectionHasItsOwnID(t *testing.T) {
	ctx := context.Background()
	b := objstore.NewMemory()
	audittest.Archive(t, b,
		audittest.Verification{Vendor: contract.Megvii, ID: "rp-1", BizNo: "loan-1", DecidedAt: t0, Seed: 5},
		audittest.Verification{Vendor: contract.Baidu, ID: "rp-2", BizNo: "loan-1", DecidedAt: t0.Add(time.Hour), Seed: 6})
	before := snapshot(t, b)
	s := audit.NewStore(b)
	replay := func(unmask bool) []contract.Envelope {
		var out []contract.Envelope
		pr, err := s.Replay(ctx, audit.ReplayConfig{Unmask: unmask}, func(_ context.Context, es []contract.Envelope) error {
			out = append(out, es...)
			return nil
		})
		if err != nil || pr.Published != 2 {
			t.Fatalf("replay: %+v %v", pr, err)
		}
		return out
	}
	same := replay(false)
	for _, e := range same {
		vendor, id, _ := contract.SplitKey(e.Key)
		if e.ID != contract.RecordID(vendor, id) {
			t.Errorf("%s: an unchanged record published under %s, want its ce_id %s", e.Key, e.ID, contract.RecordID(vendor, id))
		}
	}
	first, second := replay(true), replay(true)
	for i, e := range first {
		vendor, id, _ := contract.SplitKey(e.Key)
		if e.ID == contract.RecordID(vendor, id) {
			t.Errorf("%s: a changed record published under the record's ce_id", e.Key)
		}
		if second[i].ID != e.ID || !bytes.Equal(second[i].Value, e.Value) {
			t.Errorf("%s: a second replay published %s, the first %s", e.Key, second[i].ID, e.ID)
		}
	}
	after := snapshot(t, b)
	if len(after) != len(before) {
		t.Fatalf("%d objects before the replays, %d after", len(before), len(after))
	}
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("the replay changed %s", k)
		}
	}
}

func snapshot(t *testing.T, b objstore.Bucket) map[string][]byte {
	t.Helper()
	keys, err := objstore.Keys(context.Background(), b, "")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, k := range keys {
		rc, err := b.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		m[k] = buf.Bytes()
	}
	return m
}
