package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/ledger"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestKeygenPrintsAUsablePair(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"keygen", "--origin", "evidence.example.com/log"}, env(nil), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("keygen printed %q", out.String())
	}
	_, _, vkey, err := ledger.KeyPair(lines[0])
	if err != nil || vkey != lines[1] {
		t.Fatalf("pair %q %v", vkey, err)
	}
}

func TestNoSigningKeyIsRefused(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"--s3-bucket", "evidence"}, env(map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}), &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), SigningKeyEnv) {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	code = run([]string{"--s3-bucket", "evidence"}, env(map[string]string{SigningKeyEnv: "not a key"}), &out, &errb)
	if code == 0 || strings.Contains(errb.String(), "not a key") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestTSAFlagsAreChecked(t *testing.T) {
	base := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--s3-bucket", "evidence", "--tsa-url", "tsa.example.com"}, "--tsa-url must be an http(s) URL"},
		{[]string{"--s3-bucket", "evidence", "--tsa-cert", "x.pem"}, "--tsa-cert needs --tsa-url"},
		{[]string{"--s3-bucket", "evidence", "--tsa-url", "https://tsa.example.com", "--tsa-cert", filepath.Join(t.TempDir(), "none.pem")}, "--tsa-cert: "},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, env(base), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d: %s, want %q", c.args, code, errb.String(), c.want)
		}
	}
}
