package ledger

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// forgetful loses the entry -> leaf map: a log writer then appends an
// entry it already holds again.
type forgetful struct{ objstore.Bucket }

func (f forgetful) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.Contains(key, "/leaf/") {
		return nil, objstore.ErrNotFound
	}
	return f.Bucket.Get(ctx, key)
}

func TestCheckFindsEveryDifference(t *testing.T) {
	ctx := context.Background()
	l, mem, s, v := memoryLog(t)
	var leaves []Leaf
	for i, id := range []string{"c-1", "c-2", "c-3", "c-4"} {
		leaves = append(leaves, verification(t, mem, id, i))
	}
	if _, err := l.Append(ctx, leaves[:3]); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(ctx, l.Reader(), v)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.TreeSize != 3 || rep.Indexed != 4 || strings.Join(rep.Missing, ",") != "index/v1/by-id/megvii/c-4.json" {
		t.Fatalf("c-4 not logged yet: %+v", rep)
	}
	if _, err := l.Append(ctx, leaves[3:]); err != nil {
		t.Fatal(err)
	}
	if rep, err = Check(ctx, l.Reader(), v); err != nil || !rep.OK() || rep.TreeSize != 4 {
		t.Fatalf("every entry once: %+v %v", rep, err)
	}

	// c-2 logged again by a writer that lost the map; c-3's entry
	// rewritten; c-1's video replaced by a shorter one.
	l2, err := Open(ctx, Config{Bucket: forgetful{mem}, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Append(ctx, leaves[1:2]); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, mem, leaves[2].Key, append(leaves[2].Data, ' '), "application/json"); err != nil {
		t.Fatal(err)
	}
	if err := put(ctx, mem, "megvii/2026/07/01/media/c-1.mp4", []byte("short"), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	rep, err = Check(ctx, l.Reader(), v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Repeated, ",") != "index/v1/by-id/megvii/c-2.json" || strings.Join(rep.Changed, ",") != "index/v1/by-id/megvii/c-3.json" ||
		len(rep.Orphans) != 1 || !strings.Contains(rep.Orphans[0], "c-1.mp4 has 5 bytes, the entry names 20000") || len(rep.Missing) != 0 {
		t.Fatalf("report %+v", rep)
	}
}
