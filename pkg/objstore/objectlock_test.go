package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
)

// lockedBucket creates a bucket with Object Lock enabled (which turns on
// versioning) with a plain client, as an operator would.
func lockedBucket(t *testing.T, srv *devs3.Server, name string) {
	t.Helper()
	plain, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: name, PathStyle: true, AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
}

func lockingStore(t *testing.T, srv *devs3.Server, bucket string, mode string, days int, now func() time.Time) *S3 {
	t.Helper()
	b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true, PartSize: 5 << 20,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password), ObjectLockMode: mode, ObjectLockDays: days, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The contract holds on an object-locked bucket with a retention on every
// object written (small, multipart, conditional), which needs the
// checksum headers Object Lock requires.
func TestS3ContractObjectLocked(t *testing.T) {
	srv := devs3test.Start(t)
	lockedBucket(t, srv, "worm")
	b := lockingStore(t, srv, "worm", "GOVERNANCE", 1, nil)
	if err := b.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	contract(t, b)
}

// An evidence document written under COMPLIANCE retention can be neither
// deleted (a versioned delete of its version) nor overwritten (a second
// Create is refused; a plain PutObject only adds a newer version, the
// document's version keeps its bytes) nor have its retention shortened
// before the retention ends; multipart media likewise.
func TestS3EvidenceIsWORM(t *testing.T) {
	srv := devs3test.Start(t)
	lockedBucket(t, srv, "evidence")
	written := time.Now().UTC().Truncate(time.Second)
	b := lockingStore(t, srv, "evidence", "COMPLIANCE", 3, func() time.Time { return written })
	ctx := context.Background()
	doc := []byte(`{"vendor":"megvii","idcard_number":"110101199001011234"}`)
	big := make([]byte, 5<<20+99)
	for _, o := range []struct {
		key  string
		body io.Reader
		size int64
	}{{"megvii/2026/07/01/evidence/v1.json", bytes.NewReader(doc), int64(len(doc))}, {"baidu/2026/07/01/media/v.mp4", io.MultiReader(bytes.NewReader(big)), -1}} {
		if err := b.Create(ctx, o.key, o.body, o.size, "application/json", nil); err != nil {
			t.Fatalf("create %s: %v", o.key, err)
		}
		h, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(o.key)})
		if err != nil {
			t.Fatal(err)
		}
		want := written.Add(3 * 24 * time.Hour)
		if h.ObjectLockMode != types.ObjectLockModeCompliance || h.ObjectLockRetainUntilDate == nil || !h.ObjectLockRetainUntilDate.Equal(want) {
			t.Fatalf("%s: lock %q until %v, want COMPLIANCE until %v", o.key, h.ObjectLockMode, h.ObjectLockRetainUntilDate, want)
		}
		version := h.VersionId
		if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(o.key), VersionId: version}); err == nil {
			t.Fatalf("%s: its version was deleted under retention", o.key)
		}
		if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(o.key), VersionId: version,
			BypassGovernanceRetention: aws.Bool(true)}); err == nil {
			t.Fatalf("%s: a governance bypass deleted a COMPLIANCE version", o.key)
		}
		if _, err := b.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &b.cfg.Bucket, Key: aws.String(o.key), VersionId: version,
			Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: aws.Time(written.Add(time.Hour))}}); err == nil {
			t.Fatalf("%s: the retention was shortened", o.key)
		}
		if err := b.Create(ctx, o.key, bytes.NewReader([]byte("forged")), 6, "application/json", nil); !errors.Is(err, ErrExists) {
			t.Fatalf("%s: second create: %v", o.key, err)
		}
	}
	key := "megvii/2026/07/01/evidence/v1.json"
	h, _ := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(key)})
	if err := b.Put(ctx, key, bytes.NewReader([]byte("forged")), 6, "application/json", nil); err != nil {
		t.Fatal(err)
	}
	// An unversioned delete only adds a delete marker.
	if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(key), VersionId: h.VersionId})
	if err != nil {
		t.Fatalf("the document's version is gone: %v", err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, doc) {
		t.Fatalf("the document's version now reads %q", got)
	}
}

// GOVERNANCE: a versioned delete is refused unless it bypasses the
// governance retention, which succeeds: the same delete request that
// COMPLIANCE refuses is a valid one.
func TestS3GovernanceBypass(t *testing.T) {
	srv := devs3test.Start(t)
	lockedBucket(t, srv, "governed")
	b := lockingStore(t, srv, "governed", "GOVERNANCE", 1, nil)
	ctx := context.Background()
	key := "megvii/2026/07/01/evidence/g.json"
	if err := b.Create(ctx, key, bytes.NewReader([]byte("{}")), 2, "application/json", nil); err != nil {
		t.Fatal(err)
	}
	h, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(key)})
	if err != nil || h.ObjectLockMode != types.ObjectLockModeGovernance {
		t.Fatalf("lock %q: %v", h.ObjectLockMode, err)
	}
	if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(key), VersionId: h.VersionId}); err == nil {
		t.Fatal("a versioned delete without bypass succeeded under GOVERNANCE")
	}
	if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(key), VersionId: h.VersionId,
		BypassGovernanceRetention: aws.Bool(true)}); err != nil {
		t.Fatalf("a governance bypass by the root user: %v", err)
	}
}

// A retention asked for on a bucket without Object Lock is a start-up
// error, not a failure of every write.
func TestS3ObjectLockNeedsALockedBucket(t *testing.T) {
	srv := devs3test.Start(t)
	b := lockingStore(t, srv, "plain", "GOVERNANCE", 1, nil)
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	plain := lockingStore(t, srv, "plain", "", 0, nil)
	if err := plain.Check(context.Background()); err != nil {
		t.Fatalf("a bucket without lock and no retention asked for: %v", err)
	}
	// EnsureBucket created it with Object Lock because a retention is asked for.
	if err := b.Check(context.Background()); err != nil {
		t.Fatalf("bucket created by EnsureBucket: %v", err)
	}
	if _, err := plain.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("nolock")}); err != nil {
		t.Fatal(err)
	}
	nolock := lockingStore(t, srv, "nolock", "COMPLIANCE", 1, nil)
	if err := nolock.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "Object Lock") {
		t.Fatalf("retention on a bucket without Object Lock: %v", err)
	}
}

// AWS S3 refuses a write with Object Lock parameters that lacks Content-MD5
// (or an x-amz-checksum-*; MinIO does not insist): every PutObject and
// UploadPart carries the body's MD5, and the retention headers go on
// PutObject and CreateMultipartUpload. Recorded by a stand-in server,
// which checks each MD5 against the body it received.
func TestS3ObjectLockHeaders(t *testing.T) {
	url, seen := recordingS3(t, func(r *http.Request) string {
		return fmt.Sprintf("lock=%s until=%s", r.Header.Get("X-Amz-Object-Lock-Mode"), r.Header.Get("X-Amz-Object-Lock-Retain-Until-Date"))
	})
	now := time.Date(2026, 7, 1, 10, 0, 0, 0, time.UTC)
	b, err := NewS3(S3Config{Endpoint: url, Bucket: "b", PathStyle: true, PartSize: 5 << 20, AccessKey: config.NewSecret("k"), SecretKey: config.NewSecret("s"),
		ObjectLockMode: "COMPLIANCE", ObjectLockDays: 2555, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Create(ctx, "doc", bytes.NewReader([]byte(`{"a":1}`)), 7, "application/json", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "short-stream", io.MultiReader(bytes.NewReader([]byte("abc"))), -1, "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5<<20+1)
	big[7] = 1
	if err := b.Put(ctx, "video", io.MultiReader(bytes.NewReader(big)), -1, "video/mp4", nil); err != nil {
		t.Fatal(err)
	}
	until := "2033-06-29T10:00:00Z" // 2555 days on
	want := []string{"PUT md5=true lock=COMPLIANCE until=" + until, "PUT md5=true lock=COMPLIANCE until=" + until,
		"CreateMultipartUpload md5=false lock=COMPLIANCE until=" + until, "UploadPart md5=true lock= until=", "UploadPart md5=true lock= until=",
		"CompleteMultipartUpload md5=false lock= until="}
	if strings.Join(seen(), "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen(), "\n"), strings.Join(want, "\n"))
	}
}

// recordingS3 is a stand-in S3 endpoint that answers the multipart calls
// and records one line per request: the operation, whether Content-MD5
// matches the body it received, then what also(r) says of its headers.
// seen returns the lines so far.
func recordingS3(t *testing.T, also func(r *http.Request) string) (url string, seen func() []string) {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := md5.Sum(body)
		md5ok := r.Header.Get("Content-MD5") == base64.StdEncoding.EncodeToString(sum[:])
		op := r.Method
		switch q := r.URL.Query(); {
		case q.Has("uploads"):
			op = "CreateMultipartUpload"
			_, _ = io.WriteString(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case q.Has("partNumber"):
			op = "UploadPart"
			w.Header().Set("ETag", `"e"`)
		case q.Has("uploadId"):
			op = "CompleteMultipartUpload"
			_, _ = io.WriteString(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`)
			md5ok = false // not an upload of data
		}
		mu.Lock()
		lines = append(lines, fmt.Sprintf("%s md5=%v %s", op, md5ok, also(r)))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}
