package objstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type brokenBucket struct{ Bucket }

func (brokenBucket) Put(context.Context, string, io.Reader, int64, string, map[string]string, ...PutOption) error {
	return errors.New("store down")
}

func (brokenBucket) Iter(context.Context, string, func(string) error, ...IterOption) error {
	return errors.New("store down")
}

// Not found and exists are answers, not failures; a real error is one.
func TestInstrumentedCountsFailuresByOperation(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := Instrument(NewMemory(), reg, "test")
	ctx := context.Background()
	body := func() io.Reader { return bytes.NewReader([]byte("x")) }
	if err := b.Create(ctx, "k", body(), 1, "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "k", body(), 1, "text/plain", nil); !errors.Is(err, ErrExists) {
		t.Fatal(err)
	}
	if _, err := b.Attributes(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	// A walk its callback stops is an answer too.
	stop := errors.New("enough")
	if err := b.Iter(ctx, "", func(string) error { return stop }); !errors.Is(err, stop) {
		t.Fatal(err)
	}
	broken := Instrument(brokenBucket{NewMemory()}, prometheus.NewRegistry(), "broken")
	if err := broken.Put(ctx, "k", body(), 1, "text/plain", nil); err == nil {
		t.Fatal("broken store accepted a put")
	}
	if err := broken.Iter(ctx, "", func(string) error { return nil }); err == nil {
		t.Fatal("broken store listed")
	}
	for _, c := range []struct {
		m    *prometheus.CounterVec
		op   string
		want float64
	}{
		{b.ops, OpCreate, 2}, {b.failures, OpCreate, 0}, {b.ops, OpAttributes, 1}, {b.failures, OpAttributes, 0},
		{b.ops, OpList, 1}, {b.failures, OpList, 0},
		{broken.ops, OpPut, 1}, {broken.failures, OpPut, 1}, {broken.failures, OpList, 1},
	} {
		if got := testutil.ToFloat64(c.m.WithLabelValues(c.op)); got != c.want {
			t.Errorf("%s: %v, want %v", c.op, got, c.want)
		}
	}
	if n, _ := testutil.GatherAndCount(reg, "faceharvest_test_store_operation_duration_seconds"); n != 3 {
		t.Errorf("latency series: %d", n)
	}
}
