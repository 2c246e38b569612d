package objstore

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
)

// isolateAWS clears every setting the SDK's default chain reads from the
// environment, so that only what a test sets is found: no keys, profiles,
// web identity, container or instance role, and no ~/.aws of the machine.
func isolateAWS(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("HOME", dir)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return dir
}

// Without static keys the store takes its credentials from the SDK's
// default chain: here a shared credentials file and a profile named by
// AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE, as a mounted file or an
// operator's workstation would provide them.
func TestS3CredentialsFromSharedProfile(t *testing.T) {
	srv := devs3test.Start(t)
	dir := isolateAWS(t)
	creds := filepath.Join(dir, "evidence-credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong-secret\n\n[evidence]\naws_access_key_id = "+
		srv.User+"\naws_secret_access_key = "+srv.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "evidence")
	b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.EnsureBucket(ctx); err != nil {
		t.Fatalf("create the bucket with the profile's keys: %v", err)
	}
	body := []byte("evidence document")
	if err := b.Put(ctx, "megvii/2026/07/01/evidence/v1.json", bytes.NewReader(body), int64(len(body)), "application/json", nil); err != nil {
		t.Fatalf("put with the profile's keys: %v", err)
	}
	// And MinIO did check them: the same store with another profile's keys
	// is refused.
	t.Setenv("AWS_PROFILE", "default")
	other, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Attributes(ctx, "megvii/2026/07/01/evidence/v1.json"); err == nil {
		t.Fatal("wrong keys were accepted: the request was not signed with the profile's keys")
	}
}

// With no credentials anywhere in the chain the store sends nothing: every
// operation fails with an error that says so, and no request, signed or
// not, reaches the server.
func TestS3NoCredentialsSendsNothing(t *testing.T) {
	isolateAWS(t)
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" Authorization="+r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	b, err := NewS3(S3Config{Endpoint: srv.URL, Bucket: "evidence", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = b.Put(ctx, "k", bytes.NewReader([]byte("x")), 1, "text/plain", nil)
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("put without credentials: %v", err)
	}
	if err := b.CheckCredentials(ctx); err == nil || !strings.Contains(err.Error(), "no object-store credentials") {
		t.Errorf("credential check without credentials: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 0 {
		t.Fatalf("requests reached the store without credentials: %q", seen)
	}
}

// Explicit keys still win over the chain (MinIO, or keys from files).
func TestS3StaticKeysOverTheChain(t *testing.T) {
	srv := devs3test.Start(t)
	isolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "wrong")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	b, err := NewS3(S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// IRSA: with AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE the chain trades
// the projected token for temporary credentials at STS (here a stand-in on
// loopback named by AWS_ENDPOINT_URL_STS) and signs with them, session
// token included.
func TestS3CredentialsFromWebIdentity(t *testing.T) {
	dir := isolateAWS(t)
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("projected-service-account-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stsCalls atomic.Int64
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("WebIdentityToken") != "projected-service-account-token" ||
			r.Form.Get("RoleArn") != "arn:aws:iam::123456789012:role/faceharvest-archiver" {
			http.Error(w, "unexpected STS request", http.StatusBadRequest)
			return
		}
		stsCalls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>ASIASTANDIN</AccessKeyId><SecretAccessKey>stand-in-secret</SecretAccessKey><SessionToken>stand-in-session</SessionToken><Expiration>`+
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/faceharvest-archiver/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`)
	}))
	defer sts.Close()
	var mu sync.Mutex
	var auth, session string
	store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, session = r.Header.Get("Authorization"), r.Header.Get("X-Amz-Security-Token")
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer store.Close()
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/faceharvest-archiver")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	b, err := NewS3(S3Config{Endpoint: store.URL, Bucket: "evidence", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "k", bytes.NewReader([]byte("x")), 1, "text/plain", nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if stsCalls.Load() != 1 || !strings.Contains(auth, "Credential=ASIASTANDIN/") || session != "stand-in-session" {
		t.Fatalf("STS calls %d; the store saw Authorization %q, session token %q", stsCalls.Load(), auth, session)
	}
}
