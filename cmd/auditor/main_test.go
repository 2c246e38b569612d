package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// The auditor refuses to start without what keeps its page closed to
// strangers, and says why without printing a secret.
func TestParseRefusals(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("0123456789abcdef0123 viewer A\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := "k0123456789-0123456789-0123456789-01"
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no session key", []string{"--tokens-file", tokens}, nil, "no session key"},
		{"short session key", []string{"--tokens-file", tokens}, map[string]string{SessionKeyEnv: "short-secret-value"}, "at least 32 bytes"},
		{"no tokens file", nil, map[string]string{SessionKeyEnv: key}, "--tokens-file is required"},
		{"proxy header without addresses", []string{"--tokens-file", tokens, "--trusted-proxy-header", "X-Forwarded-User"}, map[string]string{SessionKeyEnv: key}, "go together"},
		{"role header without a user header", []string{"--tokens-file", tokens, "--trusted-proxy-role-header", "X-Role"}, map[string]string{SessionKeyEnv: key}, "needs --trusted-proxy-header"},
		{"proxy without its secret", []string{"--tokens-file", tokens, "--trusted-proxy-header", "X-U", "--trusted-proxy-cidrs", "10.0.0.0/8"}, map[string]string{SessionKeyEnv: key}, ProxySecretEnv},
		{"bad proxy CIDR", []string{"--tokens-file", tokens, "--trusted-proxy-header", "X-U", "--trusted-proxy-cidrs", "not-a-cidr"}, map[string]string{SessionKeyEnv: key}, "--trusted-proxy-cidrs"},
		{"bad log key", []string{"--tokens-file", tokens, "--log-key", "not-a-key", "--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, map[string]string{SessionKeyEnv: key, "AWS_EC2_METADATA_DISABLED": "true"}, "--log-key"},
		{"one AWS key", []string{"--tokens-file", tokens}, map[string]string{SessionKeyEnv: key, "AWS_ACCESS_KEY_ID": "ak"}, "set both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var errb bytes.Buffer
			code := run(c.args, env(c.env), io.Discard, &errb)
			if code == 0 || !strings.Contains(errb.String(), c.want) {
				t.Fatalf("exit %d, stderr %q; want a refusal saying %q", code, errb.String(), c.want)
			}
			if strings.Contains(errb.String(), "short-secret-value") {
				t.Errorf("the refusal prints the secret: %s", errb.String())
			}
		})
	}
	// A token file that does not parse stops it at start, naming the line.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("0123456789abcdef0123 admin A\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if code := run([]string{"--tokens-file", bad, "--listen", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, env(map[string]string{SessionKeyEnv: key, "AWS_EC2_METADATA_DISABLED": "true"}), io.Discard, &errb); code == 0 ||
		!strings.Contains(errb.String(), "line 1") || strings.Contains(errb.String(), "0123456789abcdef0123") {
		t.Fatalf("a bad token file: exit %d, %q", code, errb.String())
	}
}
