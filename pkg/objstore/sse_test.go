package objstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
)

// Against MinIO with its built-in single-key KMS (MINIO_KMS_SECRET_KEY):
// objects written with --s3-sse AES256 or aws:kms and a key id are stored
// encrypted with that key, small and multipart alike, and read back.
func TestS3ServerSideEncryption(t *testing.T) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	srv := devs3test.Start(t, "MINIO_KMS_SECRET_KEY=faceharvest-evidence-key:"+base64.StdEncoding.EncodeToString(key))
	ctx := context.Background()
	big := make([]byte, 5<<20+17)
	_, _ = rand.Read(big)
	for _, c := range []struct{ sse, keyID string }{{"AES256", ""}, {"aws:kms", "faceharvest-evidence-key"}} {
		t.Run(c.sse, func(t *testing.T) {
			b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "enc-" + strings.ToLower(strings.ReplaceAll(c.sse, ":", "-")), PathStyle: true, PartSize: 5 << 20,
				AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password), SSE: c.sse, SSEKMSKeyID: c.keyID})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.EnsureBucket(ctx); err != nil {
				t.Fatal(err)
			}
			for _, o := range []struct {
				key    string
				body   []byte
				stream bool // unknown size: multipart
			}{{"megvii/e.json", []byte(`{"idcard_number":"110101199001011234"}`), false}, {"baidu/v.mp4", big, true}} {
				size := int64(len(o.body))
				if o.stream {
					size = -1
				}
				if err := b.Create(ctx, o.key, io.MultiReader(bytes.NewReader(o.body)), size, "application/octet-stream", nil); err != nil {
					t.Fatalf("%s: %v", o.key, err)
				}
				h, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.cfg.Bucket, Key: aws.String(o.key)})
				if err != nil {
					t.Fatal(err)
				}
				if string(h.ServerSideEncryption) != c.sse || (c.keyID != "" && !strings.HasSuffix(aws.ToString(h.SSEKMSKeyId), c.keyID)) {
					t.Errorf("%s stored with encryption %q, key %q; want %q %q", o.key, h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId), c.sse, c.keyID)
				}
				r, err := b.Get(ctx, o.key)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(r)
				r.Close()
				if !bytes.Equal(got, o.body) {
					t.Errorf("%s read back differs", o.key)
				}
			}
		})
	}
}

// The headers every write carries, recorded by a stand-in server: the
// body's Content-MD5 on each PutObject and UploadPart; SSE and
// its KMS key on PutObject and CreateMultipartUpload (UploadPart takes
// none: the upload's settings apply).
func TestS3EncryptionHeaders(t *testing.T) {
	url, seen := recordingS3(t, func(r *http.Request) string {
		return fmt.Sprintf("sse=%s kms=%s", r.Header.Get("X-Amz-Server-Side-Encryption"), r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"))
	})
	keyID := "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	b, err := NewS3(S3Config{Endpoint: url, Bucket: "b", PathStyle: true, PartSize: 5 << 20,
		AccessKey: config.NewSecret("k"), SecretKey: config.NewSecret("s"), SSE: "aws:kms", SSEKMSKeyID: keyID})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Put(ctx, "small", bytes.NewReader([]byte("x")), 1, "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "big", io.MultiReader(bytes.NewReader(make([]byte, 5<<20+1))), -1, "video/mp4", nil); err != nil {
		t.Fatal(err)
	}
	// Content-MD5 goes on every upload of data, with or without Object Lock:
	// a bucket's default retention makes S3 require it, and the store checks
	// each part against it.
	want := []string{"PUT md5=true sse=aws:kms kms=" + keyID, "CreateMultipartUpload md5=false sse=aws:kms kms=" + keyID, "UploadPart md5=true sse= kms=",
		"UploadPart md5=true sse= kms=", "CompleteMultipartUpload md5=false sse= kms="}
	if strings.Join(seen(), "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(seen(), "\n"), strings.Join(want, "\n"))
	}
}
