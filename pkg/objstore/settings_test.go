package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
)

// Every field a CreateMultipartUpload shares with a PutObject (encryption,
// its key, Object Lock mode and retention, content type, metadata, and any
// field added to either later) is the same for the same object: a
// multipart upload cannot be written with weaker settings than a single
// put.
func TestUploadInputsCarryTheSameSettings(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	b, err := NewS3(S3Config{Bucket: "evidence", AccessKey: config.NewSecret("k"), SecretKey: config.NewSecret("s"),
		SSE: "aws:kms", SSEKMSKeyID: "alias/evidence", ObjectLockMode: "COMPLIANCE", ObjectLockDays: 30, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"sha256": "abc"}
	put := reflect.ValueOf(*b.putInput("baidu/v.mp4", bytes.NewReader(nil), 0, "video/mp4", meta, nil))
	up := reflect.ValueOf(*b.createUploadInput("baidu/v.mp4", "video/mp4", meta))
	shared := 0
	for i := 0; i < up.NumField(); i++ {
		name := up.Type().Field(i).Name
		if !up.Type().Field(i).IsExported() {
			continue
		}
		p := put.FieldByName(name)
		if !p.IsValid() {
			continue
		}
		shared++
		if !reflect.DeepEqual(p.Interface(), up.Field(i).Interface()) {
			t.Errorf("%s: PutObject has %v, CreateMultipartUpload %v", name, p.Interface(), up.Field(i).Interface())
		}
	}
	for _, name := range []string{"ServerSideEncryption", "SSEKMSKeyId", "ObjectLockMode", "ObjectLockRetainUntilDate"} {
		if put.FieldByName(name).IsZero() {
			t.Errorf("PutObject has no %s", name)
		}
	}
	if shared < 8 {
		t.Fatalf("only %d fields compared", shared)
	}
}

// Against MinIO: a single put and a multipart upload to an encrypted,
// object-locked bucket are stored with the same encryption and the same
// retention.
func TestS3PutAndMultipartStoreTheSameSettings(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	srv := devs3test.Start(t, "MINIO_KMS_SECRET_KEY=faceharvest-evidence-key:"+base64.StdEncoding.EncodeToString(key))
	lockedBucket(t, srv, "sealed")
	written := time.Now().UTC().Truncate(time.Second)
	b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "sealed", PathStyle: true, PartSize: 5 << 20,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password),
		SSE: "aws:kms", SSEKMSKeyID: "faceharvest-evidence-key", ObjectLockMode: "GOVERNANCE", ObjectLockDays: 2,
		Now: func() time.Time { return written }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := make([]byte, 5<<20+7)
	if err := b.Put(ctx, "single", bytes.NewReader([]byte("{}")), 2, "application/json", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "multipart", io.MultiReader(bytes.NewReader(big)), -1, "video/mp4", nil); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, k := range []string{"single", "multipart"} {
		h, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(k)})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, string(h.ServerSideEncryption)+" "+aws.ToString(h.SSEKMSKeyId)+" "+string(h.ObjectLockMode)+" "+aws.ToTime(h.ObjectLockRetainUntilDate).UTC().String())
	}
	want := "aws:kms"
	if seen[0] != seen[1] || seen[0][:len(want)] != want {
		t.Fatalf("single put stored with %q, multipart with %q", seen[0], seen[1])
	}
}
