package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
)

// contract is what every Bucket must do.
func contract(t *testing.T, b Bucket) {
	ctx := context.Background()
	small := []byte("\xff\xd8\xff evidence")
	big := make([]byte, 9<<20+123) // beyond one part: multipart, streamed
	_, _ = rand.Read(big)
	cases := []struct {
		name, key, ct string
		body          []byte
		size          int64
	}{
		{"known size", "megvii/2026-07-01/a.jpg", "image/jpeg", small, int64(len(small))},
		{"unknown size streams", "baidu/2026-07-01/v.mp4", "video/mp4", big, -1},
		{"empty", "megvii/2026-07-01/empty", "application/octet-stream", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(c.body)
			if c.size < 0 {
				body = io.MultiReader(body) // not seekable
			}
			if err := b.Put(ctx, c.key, body, c.size, c.ct, map[string]string{"sha256": "abc"}); err != nil {
				t.Fatal(err)
			}
			a, err := b.Attributes(ctx, c.key)
			if err != nil || a.Size != int64(len(c.body)) || a.ContentType != c.ct || a.Metadata["sha256"] != "abc" {
				t.Fatalf("attrs %+v %v", a, err)
			}
			r, err := b.Get(ctx, c.key)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if !bytes.Equal(got, c.body) {
				t.Fatalf("read back %d bytes, want %d", len(got), len(c.body))
			}
		})
	}
	// Writing the same key again is harmless (idempotent re-processing).
	if err := b.Put(ctx, "megvii/2026-07-01/a.jpg", bytes.NewReader(small), int64(len(small)), "image/jpeg", nil); err != nil {
		t.Fatal(err)
	}
	// Create writes only new keys, for small and multipart bodies alike.
	for _, c := range []struct {
		key  string
		body []byte
		size int64
	}{{"megvii/2026-07-01/c.jpg", small, int64(len(small))}, {"baidu/2026-07-01/c.mp4", big, -1}} {
		if err := b.Create(ctx, c.key, io.MultiReader(bytes.NewReader(c.body)), c.size, "image/jpeg", nil); err != nil {
			t.Fatalf("create %s: %v", c.key, err)
		}
		if err := b.Create(ctx, c.key, bytes.NewReader([]byte("other")), 5, "text/plain", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("second create of %s: %v", c.key, err)
		}
		if a, _ := b.Attributes(ctx, c.key); a.Size != int64(len(c.body)) {
			t.Fatalf("second create of %s replaced the object", c.key)
		}
	}
	if _, err := b.Attributes(ctx, "megvii/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := b.Get(ctx, "megvii/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	keys, err := Keys(ctx, b, "megvii/")
	if err != nil || len(keys) != 3 || keys[0] != "megvii/2026-07-01/a.jpg" {
		t.Fatalf("list %v %v", keys, err)
	}
	if err := b.Put(ctx, "x", bytes.NewReader(small), 99, "a/b", nil); err == nil {
		t.Fatal("a size that does not match the body was accepted")
	}
	// A declared SHA-256 is checked by the store: the right one is stored,
	// a wrong one refused and nothing written.
	sum := sha256.Sum256(small)
	good, bad := hex.EncodeToString(sum[:]), strings.Repeat("0", 64)
	if err := b.Create(ctx, "megvii/2026-07-01/sum-ok", bytes.NewReader(small), int64(len(small)), "image/jpeg", nil, WithSHA256(good)); err != nil {
		t.Fatalf("create with its SHA-256: %v", err)
	}
	for _, put := range []func(context.Context, string, io.Reader, int64, string, map[string]string, ...PutOption) error{b.Create, b.Put} {
		if err := put(ctx, "megvii/2026-07-01/sum-bad", bytes.NewReader(small), int64(len(small)), "image/jpeg", nil, WithSHA256(bad)); !errors.Is(err, ErrChecksum) {
			t.Fatalf("a body that differs from its declared SHA-256: %v", err)
		}
	}
	if _, err := b.Attributes(ctx, "megvii/2026-07-01/sum-bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused body was stored: %v", err)
	}
	iterContract(t, b, 20)
}

// iterContract: Iter walks the keys under a prefix in order, from after a
// key when asked, and stops at the first error of its callback; n keys are
// written (more than a page of the store's listing when n > 1000).
func iterContract(t *testing.T, b Bucket, n int) {
	ctx := context.Background()
	prefix := "iter/" + strconv.Itoa(n) + "/"
	var want []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("%sv%05d.json", prefix, i)
		if err := b.Put(ctx, k, bytes.NewReader(nil), 0, "application/json", nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	// A key beside the prefix is not listed.
	if err := b.Put(ctx, strings.TrimSuffix(prefix, "/")+"x", bytes.NewReader(nil), 0, "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	walk := func(opts ...IterOption) []string {
		t.Helper()
		got, err := Keys(ctx, b, prefix, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := walk(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("walk of %d keys: got %d keys (%v ... ), want %d in order", n, len(got), head(got), n)
	}
	mid := want[n/2]
	if got := walk(StartAfter(mid)); strings.Join(got, ",") != strings.Join(want[n/2+1:], ",") {
		t.Fatalf("walk after %s: got %d keys starting %v, want %d from %s", mid, len(got), head(got), n-n/2-1, want[n/2+1])
	}
	// A start that is no key: the walk begins at the next key.
	if got := walk(StartAfter(mid + "-")); len(got) != n-n/2-1 || got[0] != want[n/2+1] {
		t.Fatalf("walk after %s-: got %d keys starting %v", mid, len(got), head(got))
	}
	if got := walk(StartAfter(want[n-1])); len(got) != 0 {
		t.Fatalf("walk after the last key: %v", head(got))
	}
	stop := errors.New("enough")
	var seen []string
	err := b.Iter(ctx, prefix, func(k string) error {
		seen = append(seen, k)
		if len(seen) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || strings.Join(seen, ",") != strings.Join(want[:3], ",") {
		t.Fatalf("a walk stopped by its callback at the third key: saw %v, returned %v", seen, err)
	}
}

func head(keys []string) []string {
	if len(keys) > 3 {
		return keys[:3]
	}
	return keys
}

func TestMemoryContract(t *testing.T) {
	b := NewMemory()
	contract(t, b)
	iterContract(t, b, 1100)
}

// TestS3Contract runs the same suite against a real MinIO process.
func TestS3Contract(t *testing.T) {
	srv := devs3test.Start(t)
	b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true, PartSize: 5 << 20,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	contract(t, b)
	// Beyond one page of ListObjectsV2 (1000 keys): two pages.
	iterContract(t, b, 1100)
}
