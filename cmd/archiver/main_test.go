package main

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/bus"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelpNamesEveryFlagAndSecret(t *testing.T) {
	var out bytes.Buffer
	if run([]string{"--help"}, env(nil), &out, io.Discard) != 0 {
		t.Fatal("--help failed")
	}
	for _, s := range []string{"FACEHARVEST_KAFKA_BROKERS", "FACEHARVEST_S3_ENDPOINT", "FACEHARVEST_S3_BUCKET", "FACEHARVEST_SPOOL_DIR",
		"FACEHARVEST_UNMASK_IDENTITY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "--max-media-bytes", "--results-topic",
		"FACEHARVEST_MEDIA_ALLOWED_CIDRS", "FACEHARVEST_MEDIA_ALLOW_HTTP",
		"FACEHARVEST_S3_SSE", "FACEHARVEST_S3_SSE_KMS_KEY_ID",
		"FACEHARVEST_S3_OBJECT_LOCK_MODE", "FACEHARVEST_S3_OBJECT_LOCK_DAYS"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help lacks %s", s)
		}
	}
}

// Bad configuration is refused before anything is contacted, with a message
// naming the setting.
func TestBadConfiguration(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--s3-part-size=1024"}, nil, "--s3-part-size"},
		{[]string{"--s3-bucket="}, nil, "--s3-bucket"},
		{[]string{"--workers=0"}, nil, "--workers"},
		{[]string{"--download-tries=0", "--hold-limit=0s"}, nil, "--download-tries is 0: it must be positive\n--hold-limit is 0s: it must be positive"},
		{[]string{"--raw-topic="}, nil, "--raw-topic is empty"},
		{[]string{"--spool-dir=/nonexistent/spool"}, nil, "--spool-dir"},
		{nil, map[string]string{"AWS_ACCESS_KEY_ID": "only-the-key"}, "AWS_SECRET_ACCESS_KEY"},
		{nil, map[string]string{"FACEHARVEST_MAX_MEDIA_BYTES": "lots"}, "max-media-bytes"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"--media-allowed-cidrs=10.0.0.0/33"}, nil, "--media-allowed-cidrs"},
		{nil, map[string]string{"FACEHARVEST_MEDIA_ALLOWED_CIDRS": "localhost"}, "--media-allowed-cidrs"},
		{[]string{"--dlq-payload=s3"}, nil, "--dlq-payload"},
		{nil, map[string]string{"FACEHARVEST_DLQ_PAYLOAD": "Inline"}, "--dlq-payload"},
		{[]string{"--s3-sse=aes256"}, nil, "--s3-sse"},
		{[]string{"--s3-sse=AES256", "--s3-sse-kms-key-id=alias/evidence"}, nil, "--s3-sse-kms-key-id"},
		{nil, map[string]string{"FACEHARVEST_S3_SSE_KMS_KEY_ID": "alias/evidence"}, "--s3-sse-kms-key-id"},
		{[]string{"--s3-object-lock-mode=COMPLIANCE", "--startup-wait=0s"}, nil, "--s3-object-lock-mode COMPLIANCE needs --s3-object-lock-days"},
		{nil, map[string]string{"FACEHARVEST_S3_OBJECT_LOCK_DAYS": "30"}, "--s3-object-lock-days 30 needs --s3-object-lock-mode"},
		{[]string{"--s3-object-lock-mode=compliance", "--s3-object-lock-days=30"}, nil, "--s3-object-lock-mode \"compliance\": want GOVERNANCE or COMPLIANCE"},
		{[]string{"--s3-object-lock-mode=GOVERNANCE", "--s3-object-lock-days=-1"}, nil, "--s3-object-lock-days -1 must be positive"},
	} {
		var errb bytes.Buffer
		if code := run(c.args, env(c.env), io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v %v: exit %d, %q", c.args, c.env, code, errb.String())
		}
		if strings.Contains(errb.String(), "only-the-key") {
			t.Error("a secret was echoed")
		}
	}
}

// Likewise for the archiver: the store and the broker are waited for, then
// refused with a clear message. The wait outlasts one try (at most 10 s, the
// SDK retrying inside it), so at least one "waiting" line must appear.
func TestWaitsThenRefuses(t *testing.T) {
	var errb bytes.Buffer
	code := run([]string{"--kafka-brokers=127.0.0.1:1", "--metrics-addr=127.0.0.1:0", "--s3-endpoint=http://127.0.0.1:1", "--startup-wait=12s"},
		env(map[string]string{"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}), io.Discard, &errb)
	if code != 1 || !strings.Contains(errb.String(), "waiting for Kafka, the topics and the bucket") || !strings.Contains(errb.String(), "refusing to start") {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
}

// The media policy is strict by default and read from flags or environment.
func TestMediaPolicyFlags(t *testing.T) {
	o, err := parse(nil, env(nil), io.Discard)
	if err != nil || o.media.AllowHTTP || len(o.media.AllowedCIDRs) != 0 {
		t.Fatalf("default policy %+v %v", o.media, err)
	}
	o, err = parse([]string{"--media-allow-http"}, env(map[string]string{"FACEHARVEST_MEDIA_ALLOWED_CIDRS": "127.0.0.0/8,::1"}), io.Discard)
	if err != nil || !o.media.AllowHTTP || len(o.media.AllowedCIDRs) != 2 || o.media.AllowedCIDRs[1].String() != "::1/128" {
		t.Fatalf("policy %+v %v", o.media, err)
	}
}

// Encryption settings reach the store's configuration.
func TestEncryptionFlags(t *testing.T) {
	o, err := parse([]string{"--s3-sse=aws:kms"}, env(map[string]string{"FACEHARVEST_S3_SSE_KMS_KEY_ID": "alias/evidence"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.s3.SSE != "aws:kms" || o.s3.SSEKMSKeyID != "alias/evidence" {
		t.Fatalf("%+v %v", o.s3, err)
	}
}

// Retention settings reach the store's configuration.
func TestObjectLockFlags(t *testing.T) {
	o, err := parse([]string{"--s3-object-lock-mode=COMPLIANCE"}, env(map[string]string{"FACEHARVEST_S3_OBJECT_LOCK_DAYS": "2555"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.s3.ObjectLockMode != "COMPLIANCE" || o.s3.ObjectLockDays != 2555 {
		t.Fatalf("%+v %v", o.s3, err)
	}
}

// Without flags, the settings are the library's defaults: the flags keep no
// second copy of them.
func TestFlagDefaultsAreTheLibrarys(t *testing.T) {
	o, err := parse(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	run := o.run
	run.Kafka = bus.Cluster{}
	if want := archiver.DefaultRunConfig(); !reflect.DeepEqual(run, want) {
		t.Errorf("run settings %+v, want archiver.DefaultRunConfig() %+v", run, want)
	}
	if want := archiver.DefaultConfig(); !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("archiver settings %+v, want archiver.DefaultConfig() %+v", o.cfg, want)
	}
}
