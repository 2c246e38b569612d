package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/harvester"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/proctest"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

var creds = map[string]string{"FACEHARVEST_MEGVII_API_KEY": "chaos-mk", "FACEHARVEST_MEGVII_API_SECRET": "chaos-ms", "FACEHARVEST_BAIDU_API_KEY": "chaos-bk", "FACEHARVEST_BAIDU_SECRET_KEY": "chaos-bs"}

// No test may reach an instance-metadata endpoint.
func TestMain(m *testing.M) {
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Exit(m.Run())
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestHelpAndBadConfiguration(t *testing.T) {
	var out bytes.Buffer
	if run([]string{"--help"}, envOf(nil), &out, io.Discard) != 0 {
		t.Fatal("--help failed")
	}
	for _, want := range []string{"--megvii-call-budget", "--megvii-last-chance", "--baidu-token-window", "--state-topic", "--intent-grace", "FACEHARVEST_BAIDU_SECRET_KEY", "FACEHARVEST_MEGVII_RETENTION",
		"--max-unregistered", "FACEHARVEST_MAX_UNREGISTERED", "--raw-inline-max-bytes", "--s3-bucket", "--s3-create-bucket", "AWS_ACCESS_KEY_ID"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--megvii-call-budget=0"}, "budget"},
		{[]string{"--megvii-last-chance=48h"}, "last-chance"},
		{[]string{"--retry-min=1m", "--retry-max=1s"}, "retry"},
		{[]string{"--kafka-brokers=x"}, "host:port"},
		{[]string{"--max-unregistered=-1"}, "--max-unregistered must be at least 0"},
		{[]string{"--call-timeout=1m", "--intent-grace=1m"}, "--intent-grace (1m0s) must be above --call-timeout"},
		{[]string{"--raw-inline-max-bytes=100000", "--min-raw-message-bytes=100000"}, "--min-raw-message-bytes (100000) must leave room"},
		{[]string{"--raw-inline-max-bytes=0"}, "--raw-inline-max-bytes must be positive"},
	}
	for _, c := range cases {
		var errb bytes.Buffer
		if code := run(c.args, envOf(creds), io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: %d %s", c.args, code, errb.String())
		}
	}
	var errb bytes.Buffer
	if run(nil, envOf(nil), io.Discard, &errb) != 2 || !strings.Contains(errb.String(), "FACEHARVEST_MEGVII_API_KEY") {
		t.Errorf("missing credentials: %s", errb.String())
	}
}

type replica struct {
	cmd *exec.Cmd
}

// TestSIGKILLRestartsAndRebalance runs two harvester processes against the
// simulator with windows shortened to minutes (still longer than a consumer
// group needs to recover from a dead member), kills them with SIGKILL at
// points of the work the seed chooses and restarts them, and then checks the
// laws: every verification has exactly one terminal (by ce_id), no one-shot
// call was repeated after its answer was recorded, no deadline was missed.
func TestSIGKILLRestartsAndRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("processes")
	}
	const evT, stT, rawT, dlqT = "faceid.events", "faceid.harvester.state", "faceid.results.raw", "faceid.dlq"
	// Kafka's default max.message.bytes: answers go by reference to MinIO.
	b, err := devkafka.Start(devkafka.Config{Partitions: 4, Topics: []string{evT, stT, rawT, dlqT}, Compacted: []string{stT}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s3srv := devs3test.Start(t)
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(b.Addr()), Topic: evT})
	defer w.Close()
	// ingest refuses unsigned Baidu landings: it signs them with a landing
	// key for its public URL, and the simulated browser goes to the signed
	// URLs (vendorsim.Config.BaiduPages), as a customer's H5 URL would.
	is := httptest.NewUnstartedServer(nil)
	ingestReg := prometheus.NewRegistry()
	ingestCfg := ingest.DefaultConfig()
	ingestCfg.MegviiSecrets, ingestCfg.BearerTokens = []config.Secret{config.NewSecret(creds["FACEHARVEST_MEGVII_API_SECRET"])}, []config.Secret{config.NewSecret("t")}
	ingestCfg.LandingKeys, ingestCfg.PublicURL = []config.Secret{config.NewSecret("process-test-landing-key-0123456789")}, "http://"+is.Listener.Addr().String()
	ingestCfg.Registry, ingestCfg.Logger = ingestReg, slog.New(slog.DiscardHandler)
	in, err := ingest.New(ingestCfg, w)
	if err != nil {
		t.Fatal(err)
	}
	is.Config.Handler = in.Handler()
	is.Start()
	defer is.Close()
	sim := vendorsim.New(vendorsim.Config{Clock: clock.NewSim(time.Now(), 1, nil), Seed: 11,
		MegviiAPIKey: creds["FACEHARVEST_MEGVII_API_KEY"], MegviiAPISecret: creds["FACEHARVEST_MEGVII_API_SECRET"],
		BaiduAPIKey: creds["FACEHARVEST_BAIDU_API_KEY"], BaiduSecretKey: creds["FACEHARVEST_BAIDU_SECRET_KEY"],
		MegviiRetention: 150 * time.Second, BaiduVerifyTokenTTL: 10 * time.Second, BaiduRetention: 150 * time.Second, BaiduMediaRetention: 150 * time.Second,
		MegviiLimits: vendorsim.Limits{Concurrency: 6}, BaiduLimits: vendorsim.Limits{Concurrency: 6},
		Latency:         vendorsim.Latency{P50: 5 * time.Millisecond, P99: 40 * time.Millisecond},
		Faults:          vendorsim.FaultRates{Internal: 0.03, Reset: 0.01, HTML: 0.01},
		MegviiNotifyURL: is.URL + ingest.RouteMegviiCallback,
		BaiduPages:      func(vt string) (string, string) { return in.LandingURL("success", vt), in.LandingURL("failure", vt) },
		ImageBytes:      1024, CallbackBackoff: 500 * time.Millisecond})
	ms, bs := httptest.NewServer(sim.MegviiHandler()), httptest.NewServer(sim.BaiduHandler())
	defer ms.Close()
	defer bs.Close()
	sim.SetBaiduPublicURL(bs.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = sim.Run(ctx, 20*time.Millisecond) }()

	dir := t.TempDir()
	bin := proctest.Build(t, dir, "harvester")
	var mu sync.Mutex
	replicas := make([]*replica, 2)
	start := func(i int) {
		cmd := exec.Command(bin, "--kafka-brokers="+b.Addr(), "--metrics-addr=127.0.0.1:0", "--megvii-base-url="+ms.URL, "--baidu-base-url="+bs.URL,
			"--megvii-retention=150s", "--megvii-last-chance=125s", "--baidu-token-window=10s", "--baidu-poll-delay=1s", "--baidu-retention=150s", "--baidu-media-retention=150s",
			"--session-timeout=6s", "--rebalance-timeout=15s",
			"--retry-min=200ms", "--retry-max=2s", "--call-timeout=2s", "--intent-grace=3s", "--megvii-concurrency=6", "--baidu-concurrency=6", "--log-level=info",
			"--s3-endpoint="+s3srv.Endpoint, "--s3-bucket=answers", "--s3-create-bucket")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s3srv.User, "AWS_SECRET_ACCESS_KEY="+s3srv.Password)
		for k, v := range creds {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("replica%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = logf.Close()
		mu.Lock()
		replicas[i] = &replica{cmd: cmd}
		mu.Unlock()
	}
	start(0)
	start(1)
	defer func() {
		for _, r := range replicas {
			_ = r.cmd.Process.Kill()
			_ = r.cmd.Wait()
		}
	}()

	// The workload: 160 Megvii and 80 Baidu verifications of every kind.
	rng := rand.New(rand.NewPCG(5, 6))
	var regs []ingest.Registration
	megviiKeys := map[string]bool{}
	expect := map[string]string{}
	for i := 0; i < 160; i++ {
		spec := vendorsim.MegviiSpec{StartAfter: vendorsim.Duration(300 * time.Millisecond), FinalAfter: vendorsim.Duration(time.Duration(1+rng.IntN(3)) * time.Second)}
		switch x := rng.IntN(10); {
		case x < 2:
			spec.NoCallback = true
		case x < 3:
			spec.FinalStatus = "PROCESSING"
		}
		c, err := sim.CreateMegvii(spec)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, ingest.Registration{Vendor: "megvii", VerificationID: c.BizID})
		megviiKeys[contract.Key(contract.Megvii, c.BizID)] = true
		expect[contract.Key(contract.Megvii, c.BizID)] = contract.OutcomeHarvested
		if spec.FinalStatus == "PROCESSING" { // the last chance finds it unfinished
			expect[contract.Key(contract.Megvii, c.BizID)] = contract.OutcomeNotVerified
		}
	}
	wantLandings := 0
	for i := 0; i < 80; i++ {
		spec := vendorsim.BaiduSpec{CompleteAfter: vendorsim.Duration(time.Duration(1+rng.IntN(3)) * time.Second)}
		outcome := contract.OutcomeHarvested
		switch x := rng.IntN(10); {
		case x < 2:
			spec.NoRedirect = true
		case x < 3:
			spec.Outcome = "failure"
		case x < 4:
			spec.NeverCompletes = true
			// After the token window Baidu answers "Token无效或者已过期", as for a
			// mismatched access_token (001's FAQ): not a verdict.
			outcome = contract.OutcomeLost
		}
		c, err := sim.CreateBaidu(spec)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, ingest.Registration{Vendor: "baidu", VerificationID: c.VerifyToken})
		expect[contract.Key(contract.Baidu, c.VerifyToken)] = outcome
		if !spec.NoRedirect && !spec.NeverCompletes {
			wantLandings++
		}
	}
	body, _ := json.Marshal(map[string]any{"tokens": regs})
	req, _ := http.NewRequest("POST", is.URL+ingest.RouteTokens, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("register: %v %v", err, resp)
	}
	resp.Body.Close()

	// Chaos: six SIGKILLs of a replica, each restarted at once. The seed
	// decides which replica and when, counted in records on the raw topic
	// (the work done), not in seconds, so a run on a slow machine kills at
	// the same points of the work as one on a fast machine.
	// Each kill waits for the group to be stable (both replicas in the same
	// generation, every partition assigned): the embedded broker (kfake)
	// never expires a member killed between its JoinGroup and the delivery
	// of the response, and keeps its partitions assigned to it; real Kafka
	// expires it after the session timeout (see docs/known-issues.md).
	stable := func() bool {
		gens := map[int]int{}
		parts := 0
		for i := range replicas {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("replica%d.log", i)))
			lines := strings.Split(string(b), "\n")
			for j := len(lines) - 1; j >= 0; j-- {
				if strings.Contains(lines[j], `"msg":"harvester started"`) {
					return false // restarted and not yet joined
				}
				if strings.Contains(lines[j], `"msg":"generation joined"`) {
					var l struct{ Generation, Partitions int }
					_ = json.Unmarshal([]byte(lines[j]), &l)
					gens[l.Generation]++
					parts += l.Partitions
					break
				}
			}
		}
		return len(gens) == 1 && parts == 4
	}
	rawRecords := func() int64 {
		var n int64
		for p := range 4 {
			first, end, err := bus.PartitionBounds(ctx, bus.Plain(b.Addr()), rawT, p)
			if err != nil {
				t.Fatal(err)
			}
			n += end - first
		}
		return n
	}
	var killAt int64
	for k := 0; k < 6; k++ {
		killAt += 25 + int64(rng.IntN(40)) // the run writes several hundred
		seen := rawRecords()
		for wait := time.Now().Add(3 * time.Minute); seen < killAt || !stable(); seen = rawRecords() {
			if time.Now().After(wait) {
				t.Fatalf("kill %d: waited 3 minutes for %d raw records and a settled group; saw %d records, group settled %v", k+1, killAt, seen, stable())
			}
			time.Sleep(100 * time.Millisecond)
		}
		i := rng.IntN(2)
		mu.Lock()
		r := replicas[i]
		mu.Unlock()
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
		t.Logf("kill %d: replica %d at %d raw records", k+1, i, seen)
		start(i)
	}
	// Then let both run until every verification has its terminal.
	var terms map[string][]contract.Terminal
	var recorded200 map[string]bool
	deadline := time.Now().Add(3 * time.Minute)
	for {
		terms, recorded200 = readRaw(t, b.Addr(), rawT)
		if len(terms) >= len(expect) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, r := range replicas {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	for key, want := range expect {
		ts := terms[key]
		if len(ts) == 0 {
			t.Errorf("%s: no terminal", key)
			continue
		}
		for _, x := range ts[1:] {
			if x.Outcome != ts[0].Outcome || !x.DecidedAt.Equal(ts[0].DecidedAt) {
				t.Errorf("%s: duplicate terminals differ: %+v vs %+v", key, ts[0], x)
			}
		}
		got := ts[0].Outcome
		// A one-shot answer lost in a crash before it was recorded is honestly "lost".
		if got != want && !(got == contract.OutcomeLost && megviiKeys[key] && !recorded200[key]) {
			t.Errorf("%s: outcome %s (%s), want %s", key, got, ts[0].Reason, want)
		}
		if got == contract.OutcomeExpired {
			t.Errorf("%s: deadline missed", key)
		}
	}
	// Every answer stored in the object store was published: an answer
	// stored by a replica killed before it published the reference was
	// found and published by the next owner of its intent.
	store, err := objstore.NewS3(objstore.S3Config{Endpoint: s3srv.Endpoint, Bucket: "answers", PathStyle: true,
		AccessKey: config.NewSecret(s3srv.User), SecretKey: config.NewSecret(s3srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := objstore.Keys(context.Background(), store, "raw/v1/")
	if err != nil || len(keys) == 0 {
		t.Fatalf("stored answers: %d, %v", len(keys), err)
	}
	published := ids(t, b.Addr(), rawT)
	for _, k := range keys {
		a, err := store.Attributes(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		m, err := contract.MessageFromStored(k, a.Metadata)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := m.Header(contract.HeaderID); !published[string(id)] {
			t.Errorf("answer %s stored, never published", k)
		}
	}
	for key := range megviiKeys {
		_, id, _ := contract.SplitKey(key)
		st, _ := sim.Megvii(id)
		if st.Served > 1 {
			t.Errorf("%s: served %d times", key, st.Served)
		}
		if recorded200[key] && st.Outcomes[megvii.ErrDataDestroyed] > 0 {
			t.Errorf("%s: called again after its answer was recorded: %v", key, st.Outcomes)
		}
	}
	lost := 0
	for _, ts := range terms {
		if ts[0].Outcome == contract.OutcomeLost {
			lost++
		}
	}
	// Every completed flow's browser landed on its signed URL and ingest
	// published it; none was refused (landing → harvest is exercised).
	landed := metricstest.Sum(t, ingestReg, "faceharvest_ingest_events_published_total", "type="+contract.TypeBaiduCompletion)
	refused := metricstest.Sum(t, ingestReg, "faceharvest_ingest_landing_signature_failures_total")
	if landed < float64(wantLandings) || refused != 0 {
		t.Errorf("Baidu landings: %v published, %v refused; want %d published, none refused", landed, refused, wantLandings)
	}
	t.Logf("%d verifications, %d terminals, %d lost to a crash between call and record, sim: %+v", len(expect), len(terms), lost, sim.Stats())
	if t.Failed() {
		for i := range replicas {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("replica%d.log", i)))
			t.Logf("replica %d log:\n%s", i, tail(string(b), 6000))
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// readRaw reads topic, partition by partition, to the end each partition
// has when its read begins, and returns terminals by key and the keys with
// a recorded HTTP 200 answer.
func readRaw(t *testing.T, broker, topic string) (map[string][]contract.Terminal, map[string]bool) {
	t.Helper()
	cl := bus.Plain(broker)
	ctx := context.Background()
	parts, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	terms := map[string][]contract.Terminal{}
	ok200 := map[string]bool{}
	for p := range parts {
		err := bus.ReadRange(ctx, cl, topic, p, -1, func(m contract.Message) {
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			if h[contract.HeaderType] == contract.TypeHarvestTerminal {
				var tm contract.Terminal
				_ = json.Unmarshal(m.Value, &tm)
				terms[string(m.Key)] = append(terms[string(m.Key)], tm)
			} else if h[contract.HeaderHTTPStatus] == strconv.Itoa(200) && h[contract.HeaderEndpoint] != contract.EndpointCallback {
				// A served answer (a recorded callback is not one: it says
				// nothing of whether get_result's answer was recorded).
				ok200[string(m.Key)] = true
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return terms, ok200
}

// ids returns the ce_ids of topic's messages.
func ids(t *testing.T, broker, topic string) map[string]bool {
	t.Helper()
	cl := bus.Plain(broker)
	parts, err := bus.PartitionCount(context.Background(), cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for p := range parts {
		if err := bus.ReadRange(context.Background(), cl, topic, p, -1, func(m contract.Message) {
			if id, ok := m.Header(contract.HeaderID); ok {
				out[string(id)] = true
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A broker that is not there yet is waited for, try after try, and then
// refused with a clear message (a retry once registered the metrics twice
// and panicked).
func TestWaitsForTheBrokerThenRefuses(t *testing.T) {
	env := map[string]string{"FACEHARVEST_MEGVII_API_KEY": "k", "FACEHARVEST_MEGVII_API_SECRET": "s", "FACEHARVEST_BAIDU_API_KEY": "a", "FACEHARVEST_BAIDU_SECRET_KEY": "b"}
	var errb bytes.Buffer
	code := run([]string{"--kafka-brokers=127.0.0.1:1", "--metrics-addr=127.0.0.1:0", "--startup-wait=2500ms"}, func(k string) string { return env[k] }, io.Discard, &errb)
	if code != 1 || strings.Count(errb.String(), "waiting for Kafka") < 2 || !strings.Contains(errb.String(), "refusing to start") {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
}

// Without flags, the settings are the library's defaults: the flags keep no
// second copy of them.
func TestFlagDefaultsAreTheLibrarys(t *testing.T) {
	o, err := parse(nil, envOf(creds), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := o.run
	got.GroupID, got.EventsTopic, got.StateTopic, got.RawTopic, got.DLQTopic = "", "", "", "", ""
	if want := harvester.DefaultRunConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("settings %+v, want harvester.DefaultRunConfig() %+v", got, want)
	}
}
