package ledger

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// pausing stops its writer just before it writes the checkpoint: a stale
// integrator (a paused pod) that has finished everything else.
type pausing struct {
	objstore.Bucket
	key              string
	reached, release chan struct{}
}

func (p *pausing) pause(key string) {
	if key == p.key {
		close(p.reached)
		<-p.release
	}
}

func (p *pausing) Put(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	p.pause(key)
	return p.Bucket.Put(ctx, key, body, size, ct, meta, opts...)
}

func (p *pausing) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	p.pause(key)
	return p.Bucket.Create(ctx, key, body, size, ct, meta, opts...)
}

func (p *pausing) GetWithETag(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	return p.Bucket.(objstore.Swapper).GetWithETag(ctx, key, limit)
}

func (p *pausing) PutIfMatch(ctx context.Context, key string, body []byte, ct, etag string) error {
	p.pause(key)
	return p.Bucket.(objstore.Swapper).PutIfMatch(ctx, key, body, ct, etag)
}

// staleCheckpoint runs two integrators on a log of 5 leaves in b: the
// first stops before its checkpoint of 15 leaves, the second finishes that
// batch and appends 10 more; then the first writes. The stored checkpoint
// must stay at 25 leaves, and the refused write be counted.
func staleCheckpoint(t *testing.T, b objstore.Bucket) {
	ctx := context.Background()
	s, v := testKeys(t, testOrigin)
	var leaves []Leaf
	for i := range 25 {
		leaves = append(leaves, leaf(i))
	}
	current, err := Open(ctx, Config{Bucket: b, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := current.Append(ctx, leaves[:5]); err != nil {
		t.Fatal(err)
	}
	p := &pausing{Bucket: b, key: Reader{}.CheckpointKey(), reached: make(chan struct{}), release: make(chan struct{})}
	stale, err := Open(ctx, Config{Bucket: p, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(nil)
	if _, err := NewIntegrator(IntegratorConfig{Kafka: bus.Plain("127.0.0.1:9"), Log: stale, Store: b, Metrics: m}); err != nil {
		t.Fatal(err)
	}
	counted := stale.stale
	var refused []int64
	stale.stale = func(stored, ours int64) { refused = append(refused, stored, ours); counted(stored, ours) }
	done := make(chan error, 1)
	go func() { _, err := stale.Append(ctx, leaves[5:15]); done <- err }()
	<-p.reached
	if n, err := current.Append(ctx, leaves); err != nil || n != 10 {
		t.Fatalf("the current integrator appended %d: %v", n, err)
	}
	close(p.release)
	if err := <-done; err != nil {
		t.Fatalf("the stale integrator: %v", err)
	}
	cp, _, err := Reader{Bucket: b}.Checkpoint(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 25 || cp.Hash != reference(t, 25) {
		t.Fatalf("stored checkpoint of %d leaves, want the current one of 25: the stale integrator put back an older one", cp.Size)
	}
	if len(refused) != 2 || refused[0] != 25 || refused[1] != 15 {
		t.Fatalf("refused writes %v, want one (stored 25, stale 15)", refused)
	}
	if got := testutil.ToFloat64(m.staleCheckpoints); got != 1 {
		t.Fatalf("faceharvest_ledger_stale_checkpoints_total %v, want 1", got)
	}
}

func TestStaleCheckpointRefusedMemory(t *testing.T) { staleCheckpoint(t, objstore.NewMemory()) }

func TestStaleCheckpointRefusedMinIO(t *testing.T) { staleCheckpoint(t, minioBucket(t)) }

// minioBucket starts MinIO and returns its bucket "evidence", once MinIO
// has initialised (a loaded machine may take a while).
func minioBucket(t *testing.T) *objstore.S3 {
	t.Helper()
	srv := devs3test.Start(t)
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "MinIO to create the bucket", func() (bool, string) {
		err := b.EnsureBucket(context.Background())
		return err == nil, fmt.Sprint(err)
	})
	return b
}
