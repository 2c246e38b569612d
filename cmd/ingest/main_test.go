package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/proctest"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

const (
	secret     = "process-test-megvii-secret"
	token      = "process-test-bearer"
	landingKey = "process-test-landing-key-0123456789"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--help"}, env(nil), &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--kafka-brokers", "FACEHARVEST_KAFKA_BROKERS", "--listen", "--metrics-addr", "--events-topic", "--publish-timeout",
		"--baidu-success-redirect", "--kafka-batch-timeout", "FACEHARVEST_MEGVII_API_SECRET", "FACEHARVEST_INGEST_TOKENS", "/v1/tokens",
		"--public-url", "FACEHARVEST_PUBLIC_URL", "FACEHARVEST_LANDING_KEY", "--max-inflight", "--max-header-bytes", "--read-header-timeout", "--read-timeout",
		"--kafka-tls-ca-file", "--kafka-sasl-mechanism", "FACEHARVEST_KAFKA_SASL_PASSWORD",
		"/v1/megvii/tokens", "/v1/baidu/tokens", "--megvii-base-url", "--baidu-base-url", "--baidu-h5-url", "--idempotency-topic", "--idempotency-ttl",
		"--max-issuing", "--vendor-timeout", "FACEHARVEST_MEGVII_API_KEY", "FACEHARVEST_BAIDU_API_KEY", "FACEHARVEST_BAIDU_SECRET_KEY", "Idempotency-Key"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

func TestRefusesBadConfiguration(t *testing.T) {
	ok := map[string]string{"FACEHARVEST_MEGVII_API_SECRET": secret, "FACEHARVEST_INGEST_TOKENS": token, "FACEHARVEST_LANDING_KEY": landingKey, "FACEHARVEST_PUBLIC_URL": "https://kyc.example.com"}
	without := func(k string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			if a != k {
				m[a] = b
			}
		}
		return m
	}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, without("FACEHARVEST_MEGVII_API_SECRET"), "FACEHARVEST_MEGVII_API_SECRET"},
		{nil, without("FACEHARVEST_INGEST_TOKENS"), "FACEHARVEST_INGEST_TOKENS"},
		{nil, without("FACEHARVEST_LANDING_KEY"), "FACEHARVEST_LANDING_KEY"},
		{nil, withEnv(without("FACEHARVEST_INGEST_TOKENS"), "FACEHARVEST_INGEST_TOKENS", token+",short-token"), "bearer token 2 of 2 is shorter than 16"},
		{nil, without("FACEHARVEST_PUBLIC_URL"), "--public-url"},
		{nil, withEnv(without("FACEHARVEST_LANDING_KEY"), "FACEHARVEST_LANDING_KEY", landingKey+",short"), "landing key 2 of 2 is shorter than 32 bytes"},
		{[]string{"--public-url=kyc.example.com"}, ok, "public URL"},
		{[]string{"--kafka-brokers=nohost"}, ok, "want host:port"},
		{[]string{"--log-level=loud"}, ok, "log level"},
		{[]string{"--baidu-success-redirect=javascript:x"}, ok, "redirect target"},
		{nil, withEnv(without("FACEHARVEST_INGEST_TOKENS"), "FACEHARVEST_INGEST_TOKENS_FILE", "/nonexistent/tokens"), "FACEHARVEST_INGEST_TOKENS_FILE"},
		{[]string{"--kafka-sasl-mechanism=GSSAPI", "--kafka-sasl-username=u"}, withEnv(ok, "FACEHARVEST_KAFKA_SASL_PASSWORD", secret), `SASL mechanism "GSSAPI"`},
		{[]string{"--kafka-sasl-mechanism=SCRAM-SHA-512", "--kafka-sasl-username=u"}, ok, "username and a password"},
		{[]string{"--kafka-tls-ca-file=/nonexistent/ca.pem"}, ok, "TLS CA file"},
		{nil, withEnv(ok, "FACEHARVEST_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/pw"), "FACEHARVEST_KAFKA_SASL_PASSWORD_FILE"},
		{nil, withEnv(ok, "FACEHARVEST_BAIDU_API_KEY", "ak"), "set both"},
		{[]string{"--megvii-base-url=ftp://x"}, withEnv(ok, "FACEHARVEST_MEGVII_API_KEY", "mk"), "megvii base URL"},
	}
	for _, c := range cases {
		var errb bytes.Buffer
		if code := run(c.args, env(c.env), io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d: %s", c.args, code, errb.String())
		}
		if strings.Contains(errb.String(), secret) || strings.Contains(errb.String(), token) || strings.Contains(errb.String(), landingKey) {
			t.Error("secret in error output")
		}
	}
}

func withEnv(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(url)
		saw := ""
		if err != nil {
			saw = err.Error()
		}
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			saw = resp.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 2 minutes; last: %s", url, want, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProcess runs the built binary against the embedded broker: ready only
// with the topic, a signed callback acknowledged, SIGTERM exits cleanly.
func TestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	b, err := devkafka.Start(devkafka.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	bin := proctest.Build(t, dir, "ingest")
	tokFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr, listen, metrics := startIngest(t, bin, []string{"--events-topic=test.events"},
		"FACEHARVEST_KAFKA_BROKERS="+b.Addr(), "FACEHARVEST_MEGVII_API_SECRET="+secret, "FACEHARVEST_INGEST_TOKENS_FILE="+tokFile)
	waitHTTP(t, "http://"+metrics+"/healthz", 200)
	waitHTTP(t, "http://"+metrics+"/readyz", 503) // the topic does not exist yet
	b.Close()
	b, err = devkafka.Start(devkafka.Config{Port: portOf(b.Addr()), Topics: []string{"test.events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitHTTP(t, "http://"+metrics+"/readyz", 200)
	data, code, body := postCallback(t, listen)
	if code != 200 || !strings.Contains(body, contract.EventID("megvii", "1462259748,52b13fb5-8dfb-4537-a62b-a641d5e929f1", "callback", data)) {
		t.Fatalf("callback: %d %s", code, body)
	}
	// A Baidu token registered, its signed landing accepted; a forged one
	// refused.
	req, _ := http.NewRequest("POST", "http://"+listen+"/v1/tokens", strings.NewReader(`{"vendor":"baidu","verification_id":"Yz9rWITm4vak16PBAh5x8oG7"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	var reg struct {
		Registered []struct {
			SuccessURL string `json:"success_url"`
		} `json:"registered"`
	}
	if code := doJSON(t, req, &reg); code != 202 || len(reg.Registered) != 1 || !strings.HasPrefix(reg.Registered[0].SuccessURL, "http://"+listen+"/v1/callbacks/baidu/success?verify_token=Yz9rWITm4vak16PBAh5x8oG7&sig=") {
		t.Fatalf("registration: %d %+v", code, reg)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for u, want := range map[string]int{reg.Registered[0].SuccessURL: 200, "http://" + listen + "/v1/callbacks/baidu/success?verify_token=Yz9rWITm4vak16PBAh5x8oG7": 401} {
		resp, err := noRedirect.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", u, resp.StatusCode, want)
		}
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`faceharvest_ingest_requests_total{code="200",route="/v1/callbacks/megvii"} 1`, "faceharvest_ingest_kafka_messages_total", "faceharvest_ingest_publish_duration_seconds_bucket",
		`faceharvest_ingest_landing_signature_failures_total{reason="missing"} 1`, `faceharvest_ingest_events_published_total{type="com.faceharvest.baidu.completion.v1"} 1`} {
		if !strings.Contains(string(mb), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	logs := stderr.String()
	if !strings.Contains(logs, `"msg":"ingest stopped"`) || strings.Contains(logs, secret) || strings.Contains(logs, token) || strings.Contains(logs, landingKey) || strings.Contains(logs, "xxxxxx19910602xxxx") {
		t.Fatalf("logs:\n%s", logs)
	}
}

// TestShutdownDelay: on SIGTERM ingest keeps serving for --shutdown-delay
// while /readyz answers 503 (Kubernetes is still removing the pod from its
// Service's endpoints, so requests keep arriving), then drains and exits.
func TestShutdownDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	b, err := devkafka.Start(devkafka.Config{Topics: []string{"test.events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	bin := proctest.Build(t, dir, "ingest")
	// The delay bounds how long the checks below may take after SIGTERM:
	// a minute, which a busy machine needs (5 s was not always enough), at
	// the price of a test that lasts that long.
	const delay = time.Minute
	cmd, stderr, listen, metrics := startIngest(t, bin, []string{"--events-topic=test.events"}, "FACEHARVEST_KAFKA_BROKERS="+b.Addr(),
		"FACEHARVEST_MEGVII_API_SECRET="+secret, "FACEHARVEST_INGEST_TOKENS="+token, "FACEHARVEST_SHUTDOWN_DELAY="+delay.String())
	waitHTTP(t, "http://"+metrics+"/readyz", 200)
	exited := make(chan error, 1)
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- cmd.Wait() }()
	waitHTTP(t, "http://"+metrics+"/readyz", 503)
	if _, code, body := postCallback(t, listen); code != 200 {
		t.Fatalf("callback during the delay: %d %s", code, body)
	}
	if time.Since(signalled) >= delay {
		t.Fatalf("the checks took %s, longer than the delay (%s): the answers above may have come after it", time.Since(signalled).Round(time.Second), delay)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(delay + 3*time.Minute):
		t.Fatalf("ingest did not exit within 3 minutes after its %s delay", delay)
	}
	if took := time.Since(signalled); took < delay {
		t.Fatalf("exited %s after SIGTERM, before its %s delay", took, delay)
	}
	if logs := stderr.String(); !strings.Contains(logs, `"msg":"draining: /readyz fails, requests are still served"`) || !strings.Contains(logs, `"msg":"ingest stopped"`) {
		t.Fatalf("logs:\n%s", logs)
	}
}

// TestProcessOverTLSWithSCRAM runs the binary against a broker that accepts
// only TLS connections authenticated with SCRAM-SHA-512, configured by flags
// and the password file, and reads the acknowledged event back with another
// client authenticated on its own.
func TestProcessOverTLSWithSCRAM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	const kafkaPassword = "process-test-kafka-password"
	srv, ca, err := devkafka.SelfSignedTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devkafka.Start(devkafka.Config{Topics: []string{"test.events"}, TLS: srv,
		Users: []devkafka.User{{Mechanism: "SCRAM-SHA-512", Name: "ingest", Password: kafkaPassword}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bin := proctest.Build(t, dir, "ingest")
	pwFile := filepath.Join(dir, "kafka-password")
	if err := os.WriteFile(pwFile, []byte(kafkaPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, stderr, listen, metrics := startIngest(t, bin, []string{"--events-topic=test.events", "--kafka-brokers=" + b.Addr(),
		"--kafka-tls-ca-file=" + ca, "--kafka-sasl-mechanism=SCRAM-SHA-512", "--kafka-sasl-username=ingest"},
		"FACEHARVEST_KAFKA_SASL_PASSWORD_FILE="+pwFile, "FACEHARVEST_MEGVII_API_SECRET="+secret, "FACEHARVEST_INGEST_TOKENS="+token)
	waitHTTP(t, "http://"+metrics+"/readyz", 200)
	if _, code, _ := postCallback(t, listen); code != 200 {
		t.Fatalf("callback: %d\n%s", code, stderr.String())
	}
	// The event was acknowledged, so it is stored: read the topic to the
	// end each partition has now, as a client authenticated on its own.
	cl, err := bus.Security{CAFile: ca, SASLMechanism: bus.SASLScramSHA512, SASLUsername: "ingest", SASLPassword: config.NewSecret(kafkaPassword)}.Cluster([]string{b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	parts, err := bus.PartitionCount(ctx, cl, "test.events")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for p := range parts {
		if err := bus.ReadRange(ctx, cl, "test.events", p, -1, func(m contract.Message) { keys = append(keys, string(m.Key)) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) != 1 || keys[0] != "megvii:1462259748,52b13fb5-8dfb-4537-a62b-a641d5e929f1" {
		t.Fatalf("records with keys %q", keys)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	if logs := stderr.String(); !strings.Contains(logs, `"tls":true,"sasl":true`) || strings.Contains(logs, kafkaPassword) {
		t.Fatalf("logs:\n%s", logs)
	}
}

// startIngest starts the built binary on free ports with args and env added
// to the test's environment; it is killed when the test ends.
func startIngest(t *testing.T, bin string, args []string, env ...string) (*exec.Cmd, *bytes.Buffer, string, string) {
	t.Helper()
	listen, metrics := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, append([]string{"--listen=" + listen, "--metrics-addr=" + metrics, "--public-url=http://" + listen}, args...)...)
	cmd.Env = append(append(os.Environ(), "FACEHARVEST_LANDING_KEY="+landingKey), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, &stderr, listen, metrics
}

// postCallback posts the document's example as a signed form callback and
// returns its data, the answer's status and body.
func postCallback(t *testing.T, listen string) (data string, code int, body string) {
	t.Helper()
	data = string(vendordocs.MustExample("megvii_get_result_ok_000.json"))
	cb := megvii.Callback{Data: data, Sign: megvii.Sign(secret, data)}
	resp, err := http.Post("http://"+listen+"/v1/callbacks/megvii", "application/x-www-form-urlencoded", bytes.NewReader(cb.EncodeForm()))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return data, resp.StatusCode, string(b)
}

// doJSON sends req and decodes a JSON answer into v, returning the status.
func doJSON(t *testing.T, req *http.Request, v any) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}
