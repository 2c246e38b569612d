package audit_test

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// beforeCreate runs hook once, before the first Create of key.
type beforeCreate struct {
	objstore.Bucket
	key  string
	once sync.Once
	hook func()
}

func (b *beforeCreate) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	if key == b.key {
		b.once.Do(b.hook)
	}
	return b.Bucket.Create(ctx, key, body, size, ct, meta, opts...)
}

// TestByBizNoFollowsTheByIDEntry: two owners of a partition race on two
// terminals of one verification decided on different days. The first
// writes its biz_no entry, then, before its by-id entry, the second
// processes its terminal whole: its biz_no entry finds the first's (and
// leaves it), its by-id entry wins. The by-id entry decides which record
// is final, so a search by biz_no finds that record, as Get does.
func TestByBizNoFollowsTheByIDEntry(t *testing.T) {
	ctx := context.Background()
	mem := objstore.NewMemory()
	first := audittest.Verification{Vendor: contract.Megvii, ID: "race-1", BizNo: "loan-r", DecidedAt: t0, Seed: 4}
	second := first
	second.DecidedAt = t0.Add(50 * time.Hour)
	var won []contract.Record
	b := &beforeCreate{Bucket: mem, key: archiver.IndexKey(contract.Megvii, "race-1"), hook: func() {
		won = audittest.Archive(t, mem, second)
	}}
	lost := audittest.Archive(t, b, first)
	if len(won) != 1 || lost[0].Times.DecidedAt.Equal(first.DecidedAt) {
		t.Fatalf("fixture: the first owner published its own record (decided %s)", lost[0].Times.DecidedAt)
	}
	s := audit.NewStore(mem)
	got, err := s.Get(ctx, contract.Megvii, "race-1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Record.Times.DecidedAt.Equal(second.DecidedAt) {
		t.Fatalf("Get: the record decided %s, want the by-id winner's %s", got.Record.Times.DecidedAt, second.DecidedAt)
	}
	vs, _, err := s.ByBizNo(ctx, "loan-r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Index.Record != got.Index.Record || string(vs[0].RecordJSON) != string(got.RecordJSON) {
		for _, v := range vs {
			t.Logf("found %s decided %s", v.Index.Record.Key, v.Record.Times.DecidedAt)
		}
		t.Fatalf("ByBizNo found %d verifications, want the by-id entry's record %s", len(vs), got.Index.Record.Key)
	}
}
