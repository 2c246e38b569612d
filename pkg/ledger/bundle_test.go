package ledger

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

func ref(t *testing.T, b objstore.Bucket, key, ct string, body []byte) contract.ObjectRef {
	t.Helper()
	if err := put(context.Background(), b, key, body, ct); err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(body)
	return contract.ObjectRef{Key: key, SHA256: hex.EncodeToString(s[:]), Size: int64(len(body)), ContentType: ct}
}

// verification stores a verification's media, evidence, record and index
// entry as the archiver does, and returns its entry's leaf.
func verification(t *testing.T, b objstore.Bucket, id string, seed int) Leaf {
	t.Helper()
	day := "megvii/2026/07/01/"
	img := ref(t, b, day+"media/"+id+".jpg", "image/jpeg", bytes.Repeat([]byte{0xff, 0xd8, byte(seed)}, 300))
	vid := ref(t, b, day+"media/"+id+".mp4", "video/mp4", bytes.Repeat([]byte{byte(seed), 1, 2, 3}, 5000))
	ev := ref(t, b, day+"evidence/"+id+".json", contract.ContentTypeJSON, fmt.Appendf(nil, `{"schema":"faceharvest.evidence.v1","id":%q,"callback":{"sign":"s%d"}}`, id, seed))
	rec := contract.Record{Vendor: contract.Megvii, VerificationID: id, Outcome: contract.OutcomeHarvested, Evidence: &ev,
		Media: []contract.MediaRef{{ObjectRef: img, Status: contract.MediaStored}, {ObjectRef: vid, Status: contract.MediaStored}}}
	rj, _ := json.Marshal(rec)
	rr := ref(t, b, day+"records/"+id+".json", contract.ContentTypeJSON, rj)
	e := archiver.IndexEntry{Schema: archiver.IndexSchema, Vendor: contract.Megvii, VerificationID: id, RecordID: contract.RecordID(contract.Megvii, id),
		Outcome: rec.Outcome, DecidedAt: time.Date(2026, 7, 1, 8, 0, seed, 0, time.UTC), Evidence: ev, Record: rr, Media: []contract.ObjectRef{img, vid}}
	ej, _ := json.Marshal(e)
	k := archiver.IndexKey(contract.Megvii, id)
	ref(t, b, k, contract.ContentTypeJSON, ej)
	return Leaf{Key: k, Data: ej}
}

// exported builds a log of 300 verifications and exports two of them.
func exported(t *testing.T) (note.Verifier, []byte, []byte) {
	t.Helper()
	return exportedStamped(t, nil)
}

// exportedStamped is exported with each of the log's two checkpoints (of
// 270 and 300 leaves) time-stamped by tsa when not nil.
func exportedStamped(t *testing.T, tsa *testTSA) (note.Verifier, []byte, []byte) {
	t.Helper()
	ctx := context.Background()
	l, mem, _, v := memoryLog(t)
	var leaves []Leaf
	for i := range 300 {
		leaves = append(leaves, verification(t, mem, fmt.Sprintf("bz-%03d", i), i))
	}
	for _, batch := range [][]Leaf{leaves[:270], leaves[270:]} {
		if _, err := l.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if tsa != nil {
			cp, signed := l.Checkpoint()
			if reason, err := StampCheckpoint(ctx, TSA{URL: tsa.URL}, []*x509.Certificate{tsa.Root}, l.Reader(), cp.Size, signed); err != nil {
				t.Fatalf("stamping checkpoint %d: %s: %v", cp.Size, reason, err)
			}
		}
	}
	var a, b bytes.Buffer
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	if _, err := Export(ctx, l.Reader(), v, contract.Megvii, "bz-007", "auditor@example.com", at, map[string][]byte{BundleAuditTrail: []byte("[]")}, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := Export(ctx, l.Reader(), v, contract.Megvii, "bz-280", "auditor@example.com", at, nil, &b); err != nil {
		t.Fatal(err)
	}
	return v, a.Bytes(), b.Bytes()
}

func verify(zipped []byte, v note.Verifier) (BundleReport, error) {
	return VerifyBundle(bytes.NewReader(zipped), int64(len(zipped)), v)
}

// files reads a bundle's files.
func files(t *testing.T, zipped []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

// rezip writes a bundle with fs's files.
func rezip(t *testing.T, fs map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range fs {
		w, _ := zw.Create(name)
		_, _ = w.Write(body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rezipWith writes a bundle of fs's files with name's replaced by body.
func rezipWith(t *testing.T, fs map[string][]byte, name string, body []byte) []byte {
	t.Helper()
	out := maps.Clone(fs)
	out[name] = body
	return rezip(t, out)
}

func TestBundleVerifies(t *testing.T) {
	v, a, _ := exported(t)
	rep, err := verify(a, v)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entry.VerificationID != "bz-007" || rep.LeafIndex != 7 || rep.Checkpoint.Size != 300 || len(rep.Objects) != 4 {
		t.Fatalf("report %+v", rep)
	}
	out := rep.String()
	for _, want := range []string{"leaf 7 of that tree", "megvii/2026/07/01/media/bz-007.mp4", "signed by the log key " + testOrigin, "Not proved here"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	if len(rep.Unchecked) != 3 { // the audit trail, manifest and summary
		t.Errorf("unchecked %v", rep.Unchecked)
	}
}

// Each way a bundle can lie is refused with its precise reason.
func TestBundleRefusals(t *testing.T) {
	v, a, b := exported(t)
	_, other := testKeys(t, testOrigin)
	fa, fb := files(t, a), files(t, b)
	with := func(name string, body []byte) []byte { return rezipWith(t, fa, name, body) }
	media := BundleObjects + "megvii/2026/07/01/media/bz-007.jpg"
	tampered := bytes.Clone(fa[media])
	tampered[100] ^= 1
	recA, recB := BundleObjects+"megvii/2026/07/01/records/bz-007.json", BundleObjects+"megvii/2026/07/01/records/bz-280.json"
	for _, c := range []struct {
		name   string
		bundle []byte
		key    note.Verifier
		want   string
	}{
		{"tampered media byte", with(media, tampered), v, "media megvii/2026/07/01/media/bz-007.jpg: its SHA-256 is"},
		{"swapped record", with(recA, fb[recB]), v, "record megvii/2026/07/01/records/bz-007.json: its SHA-256 is"},
		{"proof for another leaf", with(BundleProofFile, fb[BundleProofFile]), v, "does not lead from index-entry.json as leaf 280"},
		{"entry of another verification", with(BundleEntry, fb[BundleEntry]), v, "does not lead from index-entry.json as leaf 7"},
		{"checkpoint signed by another key", a, other, "checkpoint is not signed by the log key " + testOrigin},
		{"truncated zip", a[:len(a)*2/3], v, "not a complete zip archive"},
		{"media left out", func() []byte { delete(fa, media); defer func() { fa = files(t, a) }(); return rezip(t, fa) }(), v, "media megvii/2026/07/01/media/bz-007.jpg is missing from the bundle"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := verify(c.bundle, c.key)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
