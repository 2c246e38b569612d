package objstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Instrumented wraps a Bucket with operation metrics: every call counted by
// operation, failures by operation (a missing or an existing object is an
// answer, not a failure), and latency by operation.
type Instrumented struct {
	b        Bucket
	ops      *prometheus.CounterVec
	failures *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// Operations named in the metrics.
const (
	OpPut        = "put"
	OpCreate     = "create"
	OpAttributes = "attributes"
	OpGet        = "get"
	OpList       = "list"
)

// Instrument registers the store metrics of component on reg and wraps b.
func Instrument(b Bucket, reg prometheus.Registerer, component string) *Instrumented {
	f := promauto.With(reg)
	l := []string{"operation"}
	return &Instrumented{b: b,
		ops: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_" + component + "_store_operations_total",
			Help: "Object-store operations by operation."}, l),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "faceharvest_" + component + "_store_operation_failures_total",
			Help: "Object-store operations that failed, by operation (not found is not a failure)."}, l),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{Name: "faceharvest_" + component + "_store_operation_duration_seconds",
			Help: "Object-store operation latency by operation.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, l),
	}
}

func (i *Instrumented) observe(op string, start time.Time, err error) {
	i.ops.WithLabelValues(op).Inc()
	i.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) {
		i.failures.WithLabelValues(op).Inc()
	}
}

// Put implements Bucket.
func (i *Instrumented) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error {
	start := time.Now()
	err := i.b.Put(ctx, key, body, size, contentType, meta, opts...)
	i.observe(OpPut, start, err)
	return err
}

// Create implements Bucket.
func (i *Instrumented) Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error {
	start := time.Now()
	err := i.b.Create(ctx, key, body, size, contentType, meta, opts...)
	i.observe(OpCreate, start, err)
	return err
}

// Attributes implements Bucket.
func (i *Instrumented) Attributes(ctx context.Context, key string) (Attrs, error) {
	start := time.Now()
	a, err := i.b.Attributes(ctx, key)
	i.observe(OpAttributes, start, err)
	return a, err
}

// Get implements Bucket.
func (i *Instrumented) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	r, err := i.b.Get(ctx, key)
	i.observe(OpGet, start, err)
	return r, err
}

// Iter implements Bucket: one operation per walk, its latency the walk's
// (callback included), a failure only when the store's listing failed (an
// error of f stops the walk and is the caller's).
func (i *Instrumented) Iter(ctx context.Context, prefix string, f func(key string) error, opts ...IterOption) error {
	start := time.Now()
	var ferr error
	err := i.b.Iter(ctx, prefix, func(k string) error {
		ferr = f(k)
		return ferr
	}, opts...)
	if ferr != nil && errors.Is(err, ferr) {
		i.observe(OpList, start, nil)
	} else {
		i.observe(OpList, start, err)
	}
	return err
}
