package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// No test may reach an instance-metadata endpoint.
func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

// noAWSCredentials leaves the SDK's default chain nothing to find.
func noAWSCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// With no credentials anywhere the archiver refuses to start, saying so,
// and never sends the store an unsigned request.
func TestRefusesWithoutStoreCredentials(t *testing.T) {
	noAWSCredentials(t)
	var requests atomic.Int64
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer store.Close()
	var errb bytes.Buffer
	code := run([]string{"--kafka-brokers=127.0.0.1:1", "--metrics-addr=127.0.0.1:0", "--s3-endpoint=" + store.URL, "--startup-wait=0s"},
		env(nil), io.Discard, &errb)
	if code != 1 || !strings.Contains(errb.String(), "no object-store credentials") {
		t.Errorf("exit %d:\n%s", code, errb.String())
	}
	if n := requests.Load(); n > 0 {
		t.Errorf("%d requests reached the store without credentials", n)
	}
}

// The archiver itself, given no static keys, takes its store credentials
// from the default chain: a shared credentials file and profile named by
// AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE. With --s3-create-bucket it
// creates the bucket in MinIO with them, then waits for Kafka (absent here).
func TestStoreCredentialsFromProfile(t *testing.T) {
	srv := devs3test.Start(t)
	noAWSCredentials(t)
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[archiver]\naws_access_key_id = "+srv.User+"\naws_secret_access_key = "+srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "archiver")
	var errb bytes.Buffer
	code := run([]string{"--kafka-brokers=127.0.0.1:1", "--metrics-addr=127.0.0.1:0", "--s3-endpoint=" + srv.Endpoint, "--s3-bucket=from-profile",
		"--s3-create-bucket", "--startup-wait=0s"}, env(nil), io.Discard, &errb)
	if code != 1 || !strings.Contains(errb.String(), "kafka") {
		t.Fatalf("exit %d, want a refusal for Kafka alone:\n%s", code, errb.String())
	}
	// Read back with the root keys: the bucket exists (a missing one is an error).
	exists := func(bucket string) error {
		b, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: bucket, PathStyle: true,
			AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = objstore.Keys(context.Background(), b, "")
		return err
	}
	if err := exists("never-created"); err == nil {
		t.Fatal("listing a missing bucket succeeded: the check below proves nothing")
	}
	if err := exists("from-profile"); err != nil {
		t.Fatalf("bucket from-profile was not created: %v", err)
	}
}
