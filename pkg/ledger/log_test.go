package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

const testOrigin = "faceharvest.test/ledger"

func testKeys(t testing.TB, origin string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// memoryLog opens an empty log in a new in-memory bucket, with a new key.
func memoryLog(t *testing.T) (*Log, *objstore.Memory, note.Signer, note.Verifier) {
	t.Helper()
	mem := objstore.NewMemory()
	s, v := testKeys(t, testOrigin)
	l, err := Open(context.Background(), Config{Bucket: mem, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	return l, mem, s, v
}

func TestKeyPairDerivesThePublicKey(t *testing.T) {
	var skey, vkey string
	for range 64 { // keys whose base64 holds a + among them
		var err error
		if skey, vkey, err = GenerateKey(testOrigin); err != nil {
			t.Fatal(err)
		}
		_, _, got, err := KeyPair(skey + "\n")
		if err != nil || got != vkey {
			t.Fatalf("derived %q %v, want %q", got, err, vkey)
		}
	}
	if _, _, _, err := KeyPair(vkey); err == nil || strings.Contains(err.Error(), vkey) {
		t.Fatalf("a public key as the signing key: %v", err)
	}
}

func leaf(i int) Leaf {
	k := fmt.Sprintf("index/v1/by-id/megvii/biz-%06d.json", i)
	return Leaf{Key: k, Data: fmt.Appendf(nil, `{"schema":"faceharvest.index.v1","n":%d}`, i)}
}

// reference computes the tree of the first n leaves from their hashes
// alone, in memory (tlog's own hash storage), to compare the tiles with.
func reference(t *testing.T, n int) tlog.Hash {
	t.Helper()
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), leaf(i).Data, r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	h, err := tlog.TreeHash(int64(n), r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// logContract grows a log in uneven batches across tile boundaries and
// checks every leaf's inclusion, the bundles, consistency between
// checkpoints and the root against an in-memory tree.
func logContract(t *testing.T, b objstore.Bucket, total int) {
	ctx := context.Background()
	s, v := testKeys(t, testOrigin)
	l, err := Open(ctx, Config{Bucket: b, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var cps []Checkpoint
	for next := 0; next < total; {
		n := min(1+rnd.IntN(300), total-next)
		var batch []Leaf
		for i := next; i < next+n; i++ {
			batch = append(batch, leaf(i))
		}
		batch = append(batch, leaf(next)) // a repeat in the batch
		if next > 0 {
			batch = append(batch, leaf(next-1)) // and one already in the log
		}
		got, err := l.Append(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Fatalf("appended %d of %d fresh leaves", got, n)
		}
		next += n
		cp, _ := l.Checkpoint()
		cps = append(cps, cp)
	}
	r := l.Reader()
	cp, signed, err := r.Checkpoint(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != int64(total) || cp.Hash != reference(t, total) {
		t.Fatalf("checkpoint %d %v, want %d %v", cp.Size, cp.Hash, total, reference(t, total))
	}
	if _, err := OpenCheckpoint(signed, v); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < total; i += 1 + rnd.IntN(37) {
		n, sum, err := r.LeafIndex(ctx, leaf(i).Key)
		if err != nil || n != int64(i) || sum != EntrySHA256(leaf(i).Data) {
			t.Fatalf("leaf %d: index %d %s %v", i, n, sum, err)
		}
		p, err := r.Prove(ctx, cp, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, cp.Size, cp.Hash, n, tlog.RecordHash(leaf(i).Data)); err != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}
	seen := 0
	if err := r.Entries(ctx, cp, 0, cp.Size, func(n int64, data []byte) error {
		if string(data) != string(leaf(int(n)).Data) {
			return fmt.Errorf("entry %d is %q", n, data)
		}
		seen++
		return nil
	}); err != nil || seen != total {
		t.Fatalf("entries: %d of %d, %v", seen, total, err)
	}
	for i := 0; i+1 < len(cps); i += 1 + rnd.IntN(3) {
		old := cps[i]
		p, err := r.ProveConsistency(ctx, cp, old)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, cp.Size, cp.Hash, old.Size, old.Hash); err != nil {
			t.Fatalf("consistency %d -> %d: %v", old.Size, cp.Size, err)
		}
	}
	// A second Log on the same bucket finds the same tree.
	l2, err := Open(ctx, Config{Bucket: b, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := l2.Checkpoint(); c2 != cp {
		t.Fatalf("reopened at %+v, want %+v", c2, cp)
	}
}

func TestLogMemory(t *testing.T) { logContract(t, objstore.NewMemory(), 1500) }

func TestLogMinIO(t *testing.T) { logContract(t, minioBucket(t), 600) }

func TestTilePathsAreC2SP(t *testing.T) {
	for _, c := range []struct {
		t    tlog.Tile
		want string
	}{
		{tlog.Tile{H: 8, L: 0, N: 1234067, W: 256}, "tile/0/x001/x234/067"},
		{tlog.Tile{H: 8, L: 1, N: 3, W: 7}, "tile/1/003.p/7"},
		{tlog.Tile{H: 8, L: -1, N: 5, W: 256}, "tile/entries/005"},
		{tlog.Tile{H: 8, L: -1, N: 1000, W: 1}, "tile/entries/x001/000.p/1"},
	} {
		if got := TilePath(c.t); got != c.want {
			t.Errorf("%+v: %s, want %s", c.t, got, c.want)
		}
	}
}

// failing fails every Put after its budget runs out: a writer that dies
// somewhere between its claim and its checkpoint.
type failing struct {
	objstore.Bucket
	budget atomic.Int64
}

var errDied = errors.New("writer died")

func (f *failing) Put(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	if f.budget.Add(-1) < 0 {
		return errDied
	}
	return f.Bucket.Put(ctx, key, body, size, ct, meta, opts...)
}

// A writer that dies at any write after its claim leaves a log that the
// next one finishes: no gap, no leaf twice, the same tree.
func TestCrashAfterClaimResumes(t *testing.T) {
	ctx := context.Background()
	s, v := testKeys(t, testOrigin)
	// Every write after the claim, the checkpoint last: budget b lets b
	// writes through, until one is enough for the whole batch.
	for budget := int64(0); ; budget++ {
		mem := objstore.NewMemory()
		l, err := Open(ctx, Config{Bucket: mem, Signer: s, Verifier: v})
		if err != nil {
			t.Fatal(err)
		}
		var first []Leaf
		for i := range 250 {
			first = append(first, leaf(i))
		}
		if _, err := l.Append(ctx, first); err != nil {
			t.Fatal(err)
		}
		f := &failing{Bucket: mem}
		f.budget.Store(budget)
		dying, err := Open(ctx, Config{Bucket: f, Signer: s, Verifier: v})
		if err != nil {
			t.Fatal(err)
		}
		var second []Leaf
		for i := 250; i < 270; i++ {
			second = append(second, leaf(i))
		}
		if _, err := dying.Append(ctx, second); err == nil {
			if budget < 20 {
				t.Fatalf("a batch of 20 leaves took %d writes", budget)
			}
			return // every write went through: no crash left to try
		} else if !errors.Is(err, errDied) {
			t.Fatalf("budget %d: append %v, want the writer to die", budget, err)
		}
		// The successor gets the same leaves again (uncommitted on the
		// topic) and one more.
		next, err := Open(ctx, Config{Bucket: mem, Signer: s, Verifier: v})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := next.Append(ctx, append(second, leaf(270))); err != nil {
			t.Fatal(err)
		}
		cp, _, err := next.Reader().Checkpoint(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != 271 || cp.Hash != reference(t, 271) {
			t.Fatalf("budget %d: tree %d %v, want 271 leaves once each", budget, cp.Size, cp.Hash)
		}
	}
}

// Two writers that both believe they own the log never fork it: the one
// that loses a claim finishes the winner's batch and appends on top.
func TestTwoWritersNeverFork(t *testing.T) {
	ctx := context.Background()
	s, v := testKeys(t, testOrigin)
	mem := objstore.NewMemory()
	a, err := Open(ctx, Config{Bucket: mem, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, Config{Bucket: mem, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		var batch []Leaf
		for i := round * 30; i < round*30+30; i++ {
			batch = append(batch, leaf(i))
		}
		// Both get the same messages; each writes from its own stale view.
		if _, err := a.Append(ctx, batch[:20]); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	cp, _, err := a.Reader().Checkpoint(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 300 || cp.Hash != reference(t, 300) {
		t.Fatalf("tree %d, want 300 leaves once each in order", cp.Size)
	}
}

func TestOpenCheckpointRefusals(t *testing.T) {
	s, v := testKeys(t, testOrigin)
	other, _ := testKeys(t, testOrigin)
	cp := Checkpoint{Origin: testOrigin, Size: 3, Hash: tlog.RecordHash([]byte("x"))}
	signed, err := Sign(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := OpenCheckpoint(signed, v); err != nil || got != cp {
		t.Fatalf("%+v %v", got, err)
	}
	byOther, _ := Sign(cp, other)
	if _, err := OpenCheckpoint(byOther, v); err == nil || !strings.Contains(err.Error(), "not signed by the log key") {
		t.Fatalf("another key: %v", err)
	}
	altered := []byte(string(signed))
	altered[len(testOrigin)+1] = '4' // size 3 -> 4
	if _, err := OpenCheckpoint(altered, v); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("altered: %v", err)
	}
}
