package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/audit"
	"github.com/faceharvest/faceharvest/pkg/audit/audittest"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// finderContract is what every Finder over a bucket the archiver wrote
// must answer: three verifications, two of them (one per vendor) sharing a
// biz_no, written by the real archiver.
func finderContract(t *testing.T, b objstore.Bucket, newFinder func(objstore.Bucket) audit.Finder) {
	ctx := context.Background()
	recs := audittest.Archive(t, b,
		audittest.Verification{Vendor: contract.Megvii, ID: "m-1", BizNo: "loan-7", DecidedAt: t0.Add(2 * time.Hour), Seed: 1},
		audittest.Verification{Vendor: contract.Baidu, ID: "b-1", BizNo: "loan-7", DecidedAt: t0.Add(time.Hour), Seed: 2},
		audittest.Verification{Vendor: contract.Megvii, ID: "m-2", BizNo: "loan-8", DecidedAt: t0.Add(3 * time.Hour), Seed: 3},
	)
	f := newFinder(b)

	t.Run("get by vendor and id", func(t *testing.T) {
		for _, want := range recs {
			v, err := f.Get(ctx, want.Vendor, want.VerificationID)
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.Marshal(want)
			if !bytes.Equal(v.RecordJSON, wantJSON) {
				t.Fatalf("record bytes:\n%s\nwant the published\n%s", v.RecordJSON, wantJSON)
			}
			if v.Record.VerificationID != want.VerificationID || v.Index.RecordID != contract.RecordID(want.Vendor, want.VerificationID) {
				t.Fatalf("%+v", v.Index)
			}
			if v.Index.Evidence.Key != want.Evidence.Key || v.Record.Identity == nil || !v.Record.Identity.Masked {
				t.Fatalf("index %+v record identity %+v", v.Index, v.Record.Identity)
			}
		}
	})
	t.Run("unknown verifications", func(t *testing.T) {
		for _, c := range []struct {
			v  contract.Vendor
			id string
		}{{contract.Megvii, "nope"}, {contract.Baidu, "m-1"}, {"other", "m-1"}, {contract.Megvii, "../by-id/megvii/m-1"}, {contract.Megvii, ""}} {
			if _, err := f.Get(ctx, c.v, c.id); !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("%s:%s: %v, want ErrNotFound", c.v, c.id, err)
			}
		}
	})
	t.Run("by biz_no, oldest decision first", func(t *testing.T) {
		for _, c := range []struct {
			bizNo string
			want  []string
		}{{"loan-7", []string{"baidu:b-1", "megvii:m-1"}}, {"loan-8", []string{"megvii:m-2"}}, {"loan-9", nil}, {"", nil}, {"loan", nil}} {
			vs, n, err := f.ByBizNo(ctx, c.bizNo, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, contract.Key(v.Record.Vendor, v.Record.VerificationID))
				if v.Record.BizNo != c.bizNo {
					t.Errorf("%q found a record of biz_no %q", c.bizNo, v.Record.BizNo)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") || n != len(c.want) {
				t.Errorf("%q: %v of %d, want %v", c.bizNo, got, n, c.want)
			}
		}
		vs, n, err := f.ByBizNo(ctx, "loan-7", 1)
		if err != nil || len(vs) != 1 || n != 2 || vs[0].Record.VerificationID != "b-1" {
			t.Fatalf("limit 1: %d verifications of %d, %v; want the oldest of 2", len(vs), n, err)
		}
	})
	t.Run("identity unmasked from the evidence", func(t *testing.T) {
		for _, c := range []struct {
			v            contract.Vendor
			id, name, no string
		}{{contract.Megvii, "m-1", audittest.MegviiName, audittest.MegviiIDNumber}, {contract.Baidu, "b-1", audittest.BaiduName, audittest.BaiduIDNumber}} {
			v, err := f.Get(ctx, c.v, c.id)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(v.RecordJSON, []byte(c.no)) {
				t.Fatalf("the record shows the full ID number")
			}
			id, err := f.Identity(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			if id.Name != c.name || id.IDNumber != c.no || id.Masked {
				t.Fatalf("%s: identity %+v", c.id, id)
			}
		}
	})
	t.Run("open only what the verification references", func(t *testing.T) {
		b1, err := f.Get(ctx, contract.Baidu, "b-1")
		if err != nil {
			t.Fatal(err)
		}
		m1, err := f.Get(ctx, contract.Megvii, "m-1")
		if err != nil {
			t.Fatal(err)
		}
		var attemptMedia int
		for _, at := range b1.Record.Attempts {
			attemptMedia += len(at.Media)
		}
		if len(b1.Record.Attempts) != 2 || attemptMedia != 6 {
			t.Fatalf("fixture: %d attempts with %d media", len(b1.Record.Attempts), attemptMedia)
		}
		keys := []contract.ObjectRef{b1.Index.Evidence, b1.Index.Record}
		for _, at := range b1.Record.Attempts {
			for _, m := range at.Media {
				keys = append(keys, m.ObjectRef)
			}
		}
		for _, ref := range keys {
			rc, attrs, err := f.Open(ctx, b1, ref.Key)
			if err != nil {
				t.Fatalf("%s: %v", ref.Key, err)
			}
			body, err := io.ReadAll(rc)
			rc.Close()
			sum := sha256.Sum256(body)
			if err != nil || hex.EncodeToString(sum[:]) != ref.SHA256 || attrs.Size != int64(len(body)) || attrs.ContentType != ref.ContentType {
				t.Fatalf("%s: %d bytes, attrs %+v, %v", ref.Key, len(body), attrs, err)
			}
		}
		for _, key := range []string{m1.Index.Evidence.Key, m1.Record.Media[0].Key, archiver.IndexKey(contract.Baidu, "b-1"), "", "baidu/"} {
			if _, _, err := f.Open(ctx, b1, key); !errors.Is(err, audit.ErrNotFound) {
				t.Errorf("opened %q of another verification or no verification: %v", key, err)
			}
		}
	})
	t.Run("altered evidence is refused", func(t *testing.T) {
		v, err := f.Get(ctx, contract.Megvii, "m-2")
		if err != nil {
			t.Fatal(err)
		}
		img := v.Record.Media[0]
		if err := b.Put(ctx, img.Key, strings.NewReader("not the image"), 13, img.ContentType, nil); err != nil {
			t.Fatal(err)
		}
		rc, _, err := f.Open(ctx, v, img.Key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rc)
		rc.Close()
		if !errors.Is(err, audit.ErrMismatch) {
			t.Fatalf("reading an altered image: %v", err)
		}
		rec := v.Index.Record
		if err := b.Put(ctx, rec.Key, strings.NewReader(`{"schema":"faceharvest.record.v1"}`), 34, rec.ContentType, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Get(ctx, contract.Megvii, "m-2"); !errors.Is(err, audit.ErrMismatch) {
			t.Fatalf("an altered record: %v", err)
		}
	})
}

func newStore(b objstore.Bucket) audit.Finder { return audit.NewStore(b) }

func TestStoreOverMemory(t *testing.T) { finderContract(t, objstore.NewMemory(), newStore) }

// TestStoreOverMinIO runs the same suite against a real MinIO process.
func TestStoreOverMinIO(t *testing.T) { finderContract(t, minioBucket(t), newStore) }

func minioBucket(t *testing.T) *objstore.S3 {
	_, b := audittest.MinIOBucket(t)
	return b
}
