package objstore

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
)

// A presigned URL downloads the object from MinIO with no credentials of
// its own, carries the expiry asked for, and stops working once it passed.
func TestPresignGetDownloadsAndExpires(t *testing.T) {
	srv := devs3test.Start(t)
	b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	body := []byte("\xff\xd8\xff presigned evidence")
	if err := b.Put(ctx, "megvii/2026/11/23/media/abc.jpg", bytes.NewReader(body), int64(len(body)), "image/jpeg", nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		expiry time.Duration
		want   string
	}{{15 * time.Minute, "900"}, {2 * time.Second, "2"}} {
		signed := time.Now()
		u, err := b.PresignGet(ctx, "megvii/2026/11/23/media/abc.jpg", c.expiry)
		if err != nil {
			t.Fatal(err)
		}
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if got := pu.Query().Get("X-Amz-Expires"); got != c.want {
			t.Fatalf("X-Amz-Expires %q, want %s", got, c.want)
		}
		if bytes.Contains([]byte(u), []byte(srv.Password)) {
			t.Fatal("the URL carries the secret key")
		}
		if c.expiry > 10*time.Second {
			// Fetched well within its expiry, the URL serves the object.
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(got, body) || resp.Header.Get("Content-Type") != "image/jpeg" {
				t.Fatalf("GET %d %q", resp.StatusCode, got)
			}
			continue
		}
		// Past its expiry the short URL is refused for that reason (S3
		// counts whole seconds from the signing time). Whether it could be
		// fetched before would depend on the machine's speed: that it is
		// signed correctly is shown by the refusal naming the expiry, not
		// the signature.
		deadline := time.Now().Add(3 * time.Minute)
		for {
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden && bytes.Contains(msg, []byte("expired")) {
				break
			}
			if resp.StatusCode != 200 || time.Now().After(deadline) {
				t.Fatalf("a %s URL answered %d %s (%s after its signing)", c.expiry, resp.StatusCode, msg, time.Since(signed).Round(time.Second))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if _, err := b.PresignGet(ctx, "k", 8*24*time.Hour); err == nil {
		t.Fatal("an expiry beyond 7 days was signed")
	}
}
