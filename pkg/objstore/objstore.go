// Package objstore is the object store the archiver writes evidence to: a
// small Bucket interface, an S3 implementation (aws-sdk-go-v2, settings that
// work with MinIO and other S3-compatible stores) and an in-memory one for
// unit tests, both held to one contract suite.
package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sort"
	"strings"
	"sync"
)

// ErrNotFound is returned for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned by Create for a key that already exists.
var ErrExists = errors.New("object exists")

// ErrChecksum is returned by Put and Create when the body's SHA-256 differs
// from the one declared with WithSHA256: nothing is stored.
var ErrChecksum = errors.New("body does not match its declared SHA-256")

// PutOption changes how one Put or Create writes.
type PutOption func(*putOptions)

type putOptions struct {
	sha256 string // hex, "" when none was declared
}

// apply is the options opts set.
func apply[O any, F ~func(*O)](opts []F) O {
	var o O
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithSHA256 declares the SHA-256 (hex) of the body a Put or Create writes.
// The store checks it and refuses a body that differs (S3 signs it as the
// payload hash, which also spares the client hashing the body again);
// multipart uploads of bodies above the part size are not checked.
func WithSHA256(hexSum string) PutOption {
	return func(o *putOptions) { o.sha256 = strings.ToLower(hexSum) }
}

// IterOption changes how Iter walks the keys.
type IterOption func(*iterOptions)

type iterOptions struct {
	startAfter string
}

// StartAfter makes Iter begin with the first key after key (which need not
// exist): a walk resumes where an earlier one stopped, and the keys before
// are not listed at all.
func StartAfter(key string) IterOption {
	return func(o *iterOptions) { o.startAfter = key }
}

// Keys returns every key under prefix, sorted: for the few callers that
// need them all at once (a walk that can stop or resume uses Iter).
func Keys(ctx context.Context, b Bucket, prefix string, opts ...IterOption) ([]string, error) {
	var keys []string
	err := b.Iter(ctx, prefix, func(k string) error {
		keys = append(keys, k)
		return nil
	}, opts...)
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// Attrs describe a stored object.
type Attrs struct {
	Size        int64
	ContentType string
	Metadata    map[string]string
}

// Bucket stores objects under keys.
type Bucket interface {
	// Put stores body under key. size is the body's length, or -1 when
	// unknown (then the body is streamed in parts).
	Put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error
	// Create is Put only when no object has the key; otherwise it writes
	// nothing and returns ErrExists.
	Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error
	// Attributes returns an object's attributes, or ErrNotFound.
	Attributes(ctx context.Context, key string) (Attrs, error)
	// Get opens an object for reading, or returns ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Iter calls f with each key under prefix in ascending byte order,
	// listing the store a page at a time (the keys are never all held).
	// When f returns an error, Iter stops listing and returns that error.
	// f may use the bucket; a key written during the walk may or may not be
	// seen.
	Iter(ctx context.Context, prefix string, f func(key string) error, opts ...IterOption) error
}

// Memory is an in-memory Bucket.
type Memory struct {
	mu   sync.Mutex
	objs map[string]memObject
}

type memObject struct {
	data  []byte
	attrs Attrs
}

// NewMemory returns an empty in-memory bucket.
func NewMemory() *Memory { return &Memory{objs: map[string]memObject{}} }

// Put implements Bucket.
func (m *Memory) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error {
	return m.put(key, body, size, contentType, meta, apply(opts), false)
}

// Create implements Bucket.
func (m *Memory) Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, opts ...PutOption) error {
	return m.put(key, body, size, contentType, meta, apply(opts), true)
}

func (m *Memory) put(key string, body io.Reader, size int64, contentType string, meta map[string]string, o putOptions, ifAbsent bool) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if size >= 0 && int64(len(b)) != size {
		return errors.New("body length differs from the size given")
	}
	if o.sha256 != "" {
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != o.sha256 {
			return ErrChecksum
		}
	}
	md := map[string]string{}
	for k, v := range meta {
		md[strings.ToLower(k)] = v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; ok && ifAbsent {
		return ErrExists
	}
	m.objs[key] = memObject{data: b, attrs: Attrs{Size: int64(len(b)), ContentType: contentType, Metadata: md}}
	return nil
}

// Attributes implements Bucket.
func (m *Memory) Attributes(ctx context.Context, key string) (Attrs, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return Attrs{}, ErrNotFound
	}
	return o.attrs, nil
}

// Get implements Bucket.
func (m *Memory) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// Iter implements Bucket over a sorted snapshot of the keys, taken a page at
// a time as a store would list them.
func (m *Memory) Iter(ctx context.Context, prefix string, f func(key string) error, opts ...IterOption) error {
	after := apply(opts).startAfter
	for {
		page := m.page(prefix, after, memoryPage)
		for _, k := range page {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(k); err != nil {
				return err
			}
		}
		if len(page) < memoryPage {
			return nil
		}
		after = page[len(page)-1]
	}
}

// memoryPage is how many keys Memory.Iter lists at once.
const memoryPage = 1000

// page returns up to n keys under prefix after after, sorted.
func (m *Memory) page(prefix, after string, n int) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) && k > after {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if len(out) > n {
		out = out[:n]
	}
	return out
}
