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

type sha256Key struct{}

// WithSHA256 declares the SHA-256 (hex) of the body the next Put or Create
// with ctx writes. The store checks it and refuses a body that differs (S3
// signs it as the payload hash, which also spares the client hashing the
// body again); multipart uploads of bodies above the part size are not
// checked.
func WithSHA256(ctx context.Context, hexSum string) context.Context {
	return context.WithValue(ctx, sha256Key{}, hexSum)
}

// declaredSHA256 returns what WithSHA256 declared, or "".
func declaredSHA256(ctx context.Context) string {
	s, _ := ctx.Value(sha256Key{}).(string)
	return s
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
	Put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string) error
	// Create is Put only when no object has the key; otherwise it writes
	// nothing and returns ErrExists.
	Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string) error
	// Attributes returns an object's attributes, or ErrNotFound.
	Attributes(ctx context.Context, key string) (Attrs, error)
	// Get opens an object for reading, or returns ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
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
func (m *Memory) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string) error {
	return m.put(ctx, key, body, size, contentType, meta, false)
}

// Create implements Bucket.
func (m *Memory) Create(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string) error {
	return m.put(ctx, key, body, size, contentType, meta, true)
}

func (m *Memory) put(ctx context.Context, key string, body io.Reader, size int64, contentType string, meta map[string]string, ifAbsent bool) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if size >= 0 && int64(len(b)) != size {
		return errors.New("body length differs from the size given")
	}
	if want := declaredSHA256(ctx); want != "" {
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != strings.ToLower(want) {
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

// List implements Bucket.
func (m *Memory) List(ctx context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}
