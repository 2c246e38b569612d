package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"kafka-brokers": "FACEHARVEST_KAFKA_BROKERS", "listen": "FACEHARVEST_LISTEN", "s3.bucket": "FACEHARVEST_S3_BUCKET"} {
		if got := EnvName(in); got != want {
			t.Errorf("%s: got %s", in, got)
		}
	}
}

func TestParseFlagBeatsEnv(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDur time.Duration
		wantL   []string
		wantErr string
	}{
		{"default", nil, nil, "def", time.Second, nil, ""},
		{"env", nil, map[string]string{"FACEHARVEST_ADDR": "from-env", "FACEHARVEST_WAIT": "5s", "FACEHARVEST_LIST": "a, b,,c"}, "from-env", 5 * time.Second, []string{"a", "b", "c"}, ""},
		{"flag wins", []string{"--addr=flag", "--list=x"}, map[string]string{"FACEHARVEST_ADDR": "from-env", "FACEHARVEST_LIST": "a"}, "flag", time.Second, []string{"x"}, ""},
		{"bad env", nil, map[string]string{"FACEHARVEST_WAIT": "soon"}, "", 0, nil, "FACEHARVEST_WAIT"},
		{"unknown flag", []string{"--nope"}, nil, "", 0, nil, "unknown flag"},
		{"positional", []string{"extra"}, nil, "", 0, nil, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := NewFlagSet("x", "test")
			addr := fs.String("addr", "def", "address")
			wait := fs.Duration("wait", time.Second, "wait")
			list := fs.StringSlice("list", nil, "list")
			err := fs.Parse(c.args, env(c.env), &bytes.Buffer{})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != c.want || *wait != c.wantDur || fmt.Sprint(*list) != fmt.Sprint(c.wantL) && len(c.wantL) > 0 {
				t.Fatalf("addr=%s wait=%s list=%v", *addr, *wait, *list)
			}
		})
	}
}

func TestHelpNamesEveryFlagAndSecret(t *testing.T) {
	fs := NewFlagSet("svc", "Does things.")
	fs.String("kafka-brokers", "127.0.0.1:9092", "brokers")
	fs.Bool("verbose", false, "more logs")
	fs.Secret("FACEHARVEST_MEGVII_API_SECRET", "Megvii secret")
	var out bytes.Buffer
	if err := fs.Parse([]string{"--help"}, env(nil), &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"Does things.", "--kafka-brokers", "FACEHARVEST_KAFKA_BROKERS", "--verbose", "FACEHARVEST_VERBOSE", "FACEHARVEST_MEGVII_API_SECRET", "_FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "Does things."); n != 1 {
		t.Errorf("help printed %d times", n)
	}
	if got := fs.EnvNames(); len(got) != 3 {
		t.Errorf("EnvNames %v", got)
	}
}

func TestSecrets(t *testing.T) {
	files := map[string]string{"/run/s": "file-secret\n", "/run/list": "a,b\nc\n"}
	read := func(name string) ([]byte, error) {
		if v, ok := files[name]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	s, err := LoadSecret(env(map[string]string{"K": "v1"}), read, "K")
	if err != nil || s.Reveal() != "v1" {
		t.Fatalf("env: %v %v", s.Reveal(), err)
	}
	s, err = LoadSecret(env(map[string]string{"K_FILE": "/run/s"}), read, "K")
	if err != nil || s.Reveal() != "file-secret" {
		t.Fatalf("file: %q %v", s.Reveal(), err)
	}
	if _, err = LoadSecret(env(map[string]string{"K": "v", "K_FILE": "/run/s"}), read, "K"); err == nil {
		t.Fatal("both set accepted")
	}
	if _, err = LoadSecret(env(map[string]string{"K_FILE": "/missing"}), read, "K"); err == nil || !strings.Contains(err.Error(), "K_FILE") {
		t.Fatalf("missing file: %v", err)
	}
	l, err := LoadSecretList(env(map[string]string{"L_FILE": "/run/list"}), read, "L")
	if err != nil || len(l) != 3 || l[2].Reveal() != "c" {
		t.Fatalf("list: %v %v", l, err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "struct", struct{ S Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), logs.String(), fmt.Sprintf("%+v", struct{ S Secret }{s})} {
		if strings.Contains(out, "hunter2") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

// --version prints the build and stops, like --help; it is a command, so no
// environment variable can trigger it.
func TestVersionFlag(t *testing.T) {
	fs := NewFlagSet("svc", "Does things.")
	fs.String("addr", "x", "address")
	var out bytes.Buffer
	if err := fs.Parse([]string{"--version"}, env(nil), &out); !errors.Is(err, ErrVersion) {
		t.Fatalf("err %v", err)
	}
	if !strings.HasPrefix(out.String(), "svc ") || !strings.Contains(out.String(), "revision") {
		t.Fatalf("printed %q", out.String())
	}
	var errb bytes.Buffer
	if code := ExitCode("svc", &errb, ErrVersion); code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d %q", code, errb.String())
	}
	fs = NewFlagSet("svc", "Does things.")
	if err := fs.Parse(nil, env(map[string]string{"FACEHARVEST_VERSION": "true"}), &out); err != nil {
		t.Fatalf("FACEHARVEST_VERSION must not act: %v", err)
	}
	var help bytes.Buffer
	_ = NewFlagSet("svc", "Does things.").Parse([]string{"--help"}, env(nil), &help)
	if !strings.Contains(help.String(), "--version\n      print the version and exit\n") || strings.Contains(help.String(), "FACEHARVEST_VERSION") {
		t.Fatalf("help:\n%s", help.String())
	}
}
