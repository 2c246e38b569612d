package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/proctest"
)

var secrets = map[string]string{"FACEHARVEST_MEGVII_API_KEY": "sim-key-1", "FACEHARVEST_MEGVII_API_SECRET": "sim-secret-1", "FACEHARVEST_BAIDU_API_KEY": "sim-ak-1", "FACEHARVEST_BAIDU_SECRET_KEY": "sim-sk-1"}

func TestHelpNamesEveryFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, func(string) string { return "" }, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	help := out.String()
	for _, want := range []string{"--megvii-call-budget", "FACEHARVEST_MEGVII_CALL_BUDGET", "--clock-scale", "--fault-truncated-base64", "FACEHARVEST_BAIDU_SECRET_KEY", "_FILE", "--megvii-defaults", "--baidu-defaults"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "FACEHARVEST_MEGVII_API_KEY"},
		{[]string{"--fault-reset=2"}, secrets, "between 0 and 1"},
		{[]string{"--megvii-callback-format=xml"}, secrets, "want form or json"},
		{[]string{"--megvii-call-budget=0"}, secrets, "at least 1"},
		{[]string{"--bogus"}, secrets, "unknown flag"},
		{[]string{`--baidu-defaults={"complete_after":"15s","colour":1}`}, secrets, "--baidu-defaults"},
		{[]string{`--megvii-defaults=[`}, secrets, "--megvii-defaults"},
		{nil, merge(secrets, map[string]string{"FACEHARVEST_CLOCK_SCALE": "fast"}), "FACEHARVEST_CLOCK_SCALE"},
		{[]string{"--clock-start=yesterday", "--megvii-addr=127.0.0.1:0", "--baidu-addr=127.0.0.1:0", "--control-addr=127.0.0.1:0"}, secrets, "--clock-start"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, func(k string) string { return c.env[k] }, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errb.String())
		}
		for _, v := range secrets {
			if strings.Contains(errb.String(), v) {
				t.Errorf("secret in error output")
			}
		}
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestProcess runs the real binary on port 0, drives it through its control
// API and stops it with SIGTERM.
func TestProcess(t *testing.T) {
	dir := t.TempDir()
	bin := proctest.Build(t, dir, "vendorsim")
	addrFile := filepath.Join(dir, "addrs.json")
	cmd := exec.Command(bin, "--megvii-addr=127.0.0.1:0", "--baidu-addr=127.0.0.1:0", "--control-addr=127.0.0.1:0", "--addr-file="+addrFile, "--clock-scale=0")
	cmd.Env = os.Environ()
	for k, v := range secrets {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, config.EnvName("image-bytes")+"=2048")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	urls := proctest.WaitJSON(t, addrFile)
	resp, err := http.Post(urls["control"]+"/sim/megvii/verifications", "application/json", strings.NewReader(`{"biz_no":"p-1"}`))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", err, resp)
	}
	resp.Body.Close()
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(urls["control"] + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v", p, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if p == "/metrics" && !strings.Contains(string(b), `faceharvest_vendorsim_verifications{vendor="megvii"} 1`) {
			t.Fatalf("metrics lack the verification gauge")
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), `"msg":"vendorsim listening"`) || strings.Contains(stderr.String(), secrets["FACEHARVEST_MEGVII_API_SECRET"]+`"`) {
		t.Fatalf("logs: %s", stderr.String())
	}
}

// The defaults flags shape what get_token and verifyToken/generate start.
func TestDefaultsFlags(t *testing.T) {
	f, err := parse([]string{`--baidu-defaults={"complete_after":"15s","media":"process_video"}`, `--megvii-defaults={"final_after":"20s"}`},
		func(k string) string { return secrets[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(f.cfg.DefaultBaidu.CompleteAfter) != 15*time.Second || f.cfg.DefaultBaidu.Media != "process_video" || time.Duration(f.cfg.DefaultMegvii.FinalAfter) != 20*time.Second {
		t.Fatalf("defaults %+v %+v", f.cfg.DefaultBaidu, f.cfg.DefaultMegvii)
	}
}
