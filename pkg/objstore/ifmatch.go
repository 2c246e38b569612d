package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// ErrChanged is returned by PutIfMatch when the stored object is not the
// one whose entity tag was given (replaced or deleted since): nothing is
// written.
var ErrChanged = errors.New("object changed since it was read")

// Swapper is a Bucket that can replace a small object only while it is
// still the one read: compare-and-swap on its entity tag (S3's If-Match,
// which MinIO and AWS S3 honour on PutObject).
type Swapper interface {
	// GetWithETag reads an object of at most limit bytes whole, with its
	// entity tag; ErrNotFound when there is none.
	GetWithETag(ctx context.Context, key string, limit int64) ([]byte, string, error)
	// PutIfMatch stores body under key only while the stored object's
	// entity tag is etag; otherwise ErrChanged. (An object that must not
	// exist yet is written with Create.)
	PutIfMatch(ctx context.Context, key string, body []byte, contentType, etag string) error
}

// OpPutIfMatch names PutIfMatch in the store metrics (GetWithETag is a get).
const OpPutIfMatch = "put_if_match"

func readLimited(r io.Reader, key string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", key, limit)
	}
	return b, nil
}

// GetWithETag implements Swapper.
func (b *S3) GetWithETag(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: &key})
	if err != nil {
		if notFound(err) {
			return nil, "", ErrNotFound
		}
		return nil, "", err
	}
	defer out.Body.Close()
	body, err := readLimited(out.Body, key, limit)
	return body, aws.ToString(out.ETag), err
}

// PutIfMatch implements Swapper with one PutObject carrying If-Match.
func (b *S3) PutIfMatch(ctx context.Context, key string, body []byte, contentType, etag string) error {
	rs := bytes.NewReader(body)
	in := b.putInput(key, rs, int64(len(body)), contentType, nil, nil)
	in.IfMatch = aws.String(etag)
	sum, err := contentMD5(rs, int64(len(body)))
	if err != nil {
		return err
	}
	in.ContentMD5 = &sum
	_, err = b.client.PutObject(ctx, in)
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "412", "ConditionalRequestConflict", "NoSuchKey", "404":
			return ErrChanged
		}
	}
	return err
}

// memETag is a Memory object's entity tag: the MD5 of its bytes, as S3
// gives for an object written in one part.
func memETag(data []byte) string {
	s := md5.Sum(data)
	return `"` + hex.EncodeToString(s[:]) + `"`
}

// GetWithETag implements Swapper.
func (m *Memory) GetWithETag(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return nil, "", ErrNotFound
	}
	if int64(len(o.data)) > limit {
		return nil, "", fmt.Errorf("%s: larger than %d bytes", key, limit)
	}
	return bytes.Clone(o.data), memETag(o.data), nil
}

// PutIfMatch implements Swapper.
func (m *Memory) PutIfMatch(ctx context.Context, key string, body []byte, contentType, etag string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok || memETag(o.data) != etag {
		return ErrChanged
	}
	data := bytes.Clone(body)
	m.objs[key] = memObject{data: data, attrs: Attrs{Size: int64(len(data)), ContentType: contentType, Metadata: map[string]string{}}}
	return nil
}

// GetWithETag implements Swapper when the wrapped bucket does
// (errors.ErrUnsupported otherwise).
func (i *Instrumented) GetWithETag(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	sw, ok := i.b.(Swapper)
	if !ok {
		return nil, "", errors.ErrUnsupported
	}
	start := time.Now()
	body, etag, err := sw.GetWithETag(ctx, key, limit)
	i.observe(OpGet, start, err)
	return body, etag, err
}

// PutIfMatch implements Swapper when the wrapped bucket does
// (errors.ErrUnsupported otherwise). A refused swap is an answer, not a
// failure.
func (i *Instrumented) PutIfMatch(ctx context.Context, key string, body []byte, contentType, etag string) error {
	sw, ok := i.b.(Swapper)
	if !ok {
		return errors.ErrUnsupported
	}
	start := time.Now()
	err := sw.PutIfMatch(ctx, key, body, contentType, etag)
	if errors.Is(err, ErrChanged) {
		i.observe(OpPutIfMatch, start, nil)
	} else {
		i.observe(OpPutIfMatch, start, err)
	}
	return err
}
