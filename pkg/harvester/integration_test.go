package harvester

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/metricstest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

const (
	evTopic, stTopic, rawTopic, dlqTopic = "faceid.events", "faceid.harvester.state", "faceid.results.raw", "faceid.dlq"
	resultsTopic                         = "faceid.results"
	simSecret                            = "integration-megvii-secret"
)

// world is the vendor simulator, ingest, an embedded broker and harvesters.
type world struct {
	t      *testing.T
	broker *devkafka.Broker
	sim    *vendorsim.Sim
	clk    *clock.Sim
	ingest *httptest.Server
	mc     *megvii.Client
	bc     *baidu.Client
	reg    *prometheus.Registry // ingest's metrics
	// answers is the object store the harvesters keep answers in.
	answers *objstore.Memory
}

func newWorld(t *testing.T, simCfg func(*vendorsim.Config)) *world {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{Partitions: 3, Topics: []string{evTopic, stTopic, rawTopic, dlqTopic, resultsTopic}, Compacted: []string{stTopic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(b.Addr()), Topic: evTopic})
	t.Cleanup(func() { _ = w.Close() })
	clk := clock.NewSim(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC), 0, nil)
	// ingest signs Baidu landings and refuses unsigned ones (401): it gets a
	// landing key and its public URL, and the simulated browser goes to the
	// signed URLs, as a customer puts them into the H5 URL.
	is := httptest.NewUnstartedServer(nil)
	reg := prometheus.NewRegistry()
	ingestCfg := ingest.DefaultConfig()
	ingestCfg.MegviiSecrets, ingestCfg.BearerTokens = []config.Secret{config.NewSecret(simSecret)}, []config.Secret{config.NewSecret("t")}
	ingestCfg.LandingKeys, ingestCfg.PublicURL = []config.Secret{config.NewSecret("integration-landing-key-0123456789abcdef")}, "http://"+is.Listener.Addr().String()
	ingestCfg.Registry, ingestCfg.Logger, ingestCfg.Now, ingestCfg.MaxTokenAge = reg, slog.New(slog.DiscardHandler), clk.Now, 30*24*time.Hour
	in, err := ingest.New(ingestCfg, w)
	if err != nil {
		t.Fatal(err)
	}
	is.Config.Handler = in.Handler()
	is.Start()
	t.Cleanup(is.Close)
	cfg := vendorsim.Config{Clock: clk, Seed: 3, MegviiAPIKey: "mk", MegviiAPISecret: simSecret, BaiduAPIKey: "bk", BaiduSecretKey: "bs",
		MegviiNotifyURL: is.URL + ingest.RouteMegviiCallback,
		BaiduPages:      func(vt string) (string, string) { return in.LandingURL("success", vt), in.LandingURL("failure", vt) },
		ImageBytes:      2048, VideoBytes: 4096}
	if simCfg != nil {
		simCfg(&cfg)
	}
	sim := vendorsim.New(cfg)
	ms := httptest.NewServer(sim.MegviiHandler())
	bs := httptest.NewServer(sim.BaiduHandler())
	t.Cleanup(ms.Close)
	t.Cleanup(bs.Close)
	sim.SetBaiduPublicURL(bs.URL)
	mc, _ := megvii.New(megvii.Config{BaseURL: ms.URL, APIKey: config.NewSecret("mk"), APISecret: config.NewSecret(simSecret)})
	bc, _ := baidu.New(baidu.Config{BaseURL: bs.URL, APIKey: config.NewSecret("bk"), SecretKey: config.NewSecret("bs"), Now: clk.Now})
	return &world{t: t, broker: b, sim: sim, clk: clk, ingest: is, mc: mc, bc: bc, reg: reg, answers: objstore.NewMemory()}
}

// landings returns how many Baidu landings ingest published and how many it
// refused for their signature.
func (w *world) landings() (published, refused float64) {
	w.t.Helper()
	return metricstest.Sum(w.t, w.reg, "faceharvest_ingest_events_published_total", "type="+contract.TypeBaiduCompletion),
		metricstest.Sum(w.t, w.reg, "faceharvest_ingest_landing_signature_failures_total")
}

func (w *world) register(regs []ingest.Registration) {
	w.t.Helper()
	code, body, err := postJSON(w.ingest.URL+ingest.RouteTokens, "t", map[string]any{"tokens": regs})
	if err != nil || code != 202 {
		w.t.Fatalf("register: %d %s %v", code, body, err)
	}
}

// startHarvester runs one harvester replica until the returned stop is called.
func (w *world) startHarvester(limits map[contract.Vendor]VendorLimits) (stop func(), h *Harvester) {
	w.t.Helper()
	return w.startHarvesterWith(limits, nil)
}

// startHarvesterWith is startHarvester with the engine's configuration
// changed by adjust.
func (w *world) startHarvesterWith(limits map[contract.Vendor]VendorLimits, adjust func(*EngineConfig)) (stop func(), h *Harvester) {
	w.t.Helper()
	pol := schedule.Defaults()
	pol.RetryMin, pol.RetryMax = time.Second, 10*time.Second
	ctx, cancel := context.WithCancel(context.Background())
	ec := engineConfig(func(c *EngineConfig) {
		c.Policy, c.Callers, c.Now, c.Source, c.Metrics, c.IntentGrace, c.Answers = pol, map[contract.Vendor]Caller{contract.Megvii: MegviiCaller{w.mc}, contract.Baidu: BaiduCaller{w.bc}}, w.clk.Now, "/harvester", NewMetrics(nil), 90*time.Second, w.answers
		for v, l := range limits { // the vendors limits leaves out keep the defaults
			c.Limits[v] = l
		}
	})
	if adjust != nil {
		adjust(&ec)
	}
	h, err := New(ctx, Config{Kafka: bus.Plain(w.broker.Addr()), GroupID: "harvester", EventsTopic: evTopic, StateTopic: stTopic, RawTopic: rawTopic, DLQTopic: dlqTopic,
		Engine: ec, Logger: testLogger()})
	if err != nil {
		w.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	return func() { cancel(); <-done }, h
}

// readTopic calls fn for every message of topic, partition by partition, up
// to the end each partition has when its read begins (a timed poll could end
// before a slow broker answered, and read nothing).
func (w *world) readTopic(topic string, fn func(contract.Message)) {
	w.t.Helper()
	cl := bus.Plain(w.broker.Addr())
	ctx := context.Background()
	parts, err := bus.PartitionCount(ctx, cl, topic)
	if err != nil {
		w.t.Fatal(err)
	}
	for p := range parts {
		if err := bus.ReadRange(ctx, cl, topic, p, -1, fn); err != nil {
			w.t.Fatal(err)
		}
	}
}

// rawTerminals reads the raw topic and returns terminals by key, and every
// response id seen.
func (w *world) rawTerminals() (map[string][]contract.Terminal, map[string]bool) {
	w.t.Helper()
	terms := map[string][]contract.Terminal{}
	responses := map[string]bool{}
	w.readTopic(rawTopic, func(m contract.Message) {
		typ, _ := m.Header(contract.HeaderType)
		if string(typ) == contract.TypeHarvestTerminal {
			var t contract.Terminal
			_ = json.Unmarshal(m.Value, &t)
			terms[string(m.Key)] = append(terms[string(m.Key)], t)
		} else {
			id, _ := m.Header(contract.HeaderID)
			responses[string(id)] = true
		}
	})
	return terms, responses
}

// waitTerminals reads the raw topic until key has a terminal, for two
// minutes at most: an engine can look drained while a rebalance moves the
// key's partition, and one read can end before a slow broker answered.
func (w *world) waitTerminals(key string) []contract.Terminal {
	w.t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		terms, _ := w.rawTerminals()
		if ts := terms[key]; len(ts) > 0 || time.Now().After(deadline) {
			return ts
		}
	}
}

// waitLoaded waits until the engines own every partition and hold want
// pending verifications: the simulated clock must not move before the events
// are in, or they would arrive after their windows.
func (w *world) waitLoaded(want int, engines ...*Engine) {
	w.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		parts, pending := 0, 0
		for _, e := range engines {
			parts += e.Partitions()
			pending += e.Pending()
		}
		if parts == 3 && pending == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("not loaded: %d of 3 partitions, %d of %d verifications", parts, pending, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// advance moves the simulated clock forward by total, jumping from event to
// event (the next callback due, the next verification due) so that retries
// happen at their own times, and lets the harvesters work at each stop.
func (w *world) advance(total time.Duration, engines ...*Engine) {
	end := w.clk.Now().Add(total)
	// settle waits until no engine has work due or in flight at this
	// instant of the simulated clock; moving the clock before would make
	// the work late. A busy machine may take long, but not minutes.
	settle := func() {
		w.t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			due, busy := 0, 0
			for _, e := range engines {
				due += e.dueCount()
				busy += e.busyCount()
			}
			if due == 0 && busy == 0 {
				return
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("the harvesters did not settle at %s within 3 minutes: %d verifications due, %d calls in flight", w.clk.Now().Format(time.RFC3339), due, busy)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for {
		w.sim.DispatchDue(context.Background())
		settle()
		next := end
		if t := w.sim.NextDelivery(); !t.IsZero() && t.Before(next) {
			next = t
		}
		for _, e := range engines {
			if t := e.NextWake(); !t.IsZero() && t.Before(next) {
				next = t
			}
		}
		now := w.clk.Now()
		if !next.After(now) {
			next = now.Add(time.Millisecond)
		}
		if next.After(end) {
			w.clk.Set(end)
			w.sim.DispatchDue(context.Background())
			settle()
			return
		}
		w.clk.Set(next)
	}
}

func TestHarvestEveryKindOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	w := newWorld(t, nil)
	want := map[string]string{} // key -> outcome
	var regs []ingest.Registration
	var landed []string // Baidu flows that pass and land on /success
	for i := 0; i < 12; i++ {
		spec := vendorsim.MegviiSpec{BizNo: fmt.Sprintf("m-%d", i)}
		outcome := contract.OutcomeHarvested
		switch i % 4 {
		case 1:
			spec.NoCallback = true // harvested at the last chance
		case 2:
			spec.FinalStatus = "PROCESSING" // never finishes: the last chance records it, not verified
			outcome = contract.OutcomeNotVerified
		case 3:
			spec.FinalStatus = "CANCELLED"
		}
		c, err := w.sim.CreateMegvii(spec)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, ingest.Registration{Vendor: "megvii", VerificationID: c.BizID, BizNo: c.BizNo})
		want[contract.Key(contract.Megvii, c.BizID)] = outcome
	}
	for i := 0; i < 8; i++ {
		spec := vendorsim.BaiduSpec{}
		outcome := contract.OutcomeHarvested
		switch i % 4 {
		case 1:
			spec.Outcome = "failure"
		case 2:
			spec.NeverCompletes = true
			// After the token window Baidu answers "Token无效或者已过期", as for a
			// mismatched access_token (001's FAQ): not a verdict.
			outcome = contract.OutcomeLost
		case 3:
			spec.NoRedirect = true // found by the poll after the token window
		}
		c, err := w.sim.CreateBaidu(spec)
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, ingest.Registration{Vendor: "baidu", VerificationID: c.VerifyToken})
		want[contract.Key(contract.Baidu, c.VerifyToken)] = outcome
		if i%4 == 0 {
			landed = append(landed, contract.Key(contract.Baidu, c.VerifyToken))
		}
	}
	w.register(regs)
	stop, h := w.startHarvester(map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 4}, contract.Baidu: {Concurrency: 4}})
	defer stop()
	w.waitLoaded(len(want), h.Engine())
	w.advance(26*time.Hour+time.Minute, h.Engine())
	waitDrained(t, h.Engine())
	terms, responses := w.rawTerminals()
	for key, outcome := range want {
		ts := terms[key]
		if len(ts) != 1 {
			t.Errorf("%s: %d terminals", key, len(ts))
			continue
		}
		if ts[0].Outcome != outcome {
			t.Errorf("%s: outcome %s (%s), want %s", key, ts[0].Outcome, ts[0].Reason, outcome)
		}
		for _, id := range ts[0].Responses {
			if !responses[id] {
				t.Errorf("%s: terminal names response %s that is not in the topic", key, id)
			}
		}
	}
	if len(terms) != len(want) {
		t.Errorf("%d terminals for %d verifications", len(terms), len(want))
	}
	// Signed landings are accepted (4 flows land: 2 passed, 2 failed) and a
	// passed one is harvested on its landing, well inside the token window
	// (a refused landing would leave it to the poll after the window).
	if published, refused := w.landings(); published != 4 || refused != 0 {
		t.Errorf("Baidu landings: %v published, %v refused; want 4 published, none refused", published, refused)
	}
	for _, key := range landed {
		if ts := terms[key]; len(ts) == 1 && (ts[0].Landing != "success" || ts[0].IssuedAt == nil || !ts[0].DecidedAt.Before(ts[0].IssuedAt.Add(time.Hour))) {
			t.Errorf("%s: landing %q, decided %v after issue: want harvested on its landing", key, ts[0].Landing, ts[0].DecidedAt.Sub(*ts[0].IssuedAt))
		}
	}
	st := w.sim.Stats()
	if st.MegviiServedTwice != 0 || st.MegviiDestroyedHits != 0 {
		t.Fatalf("one-shot calls repeated: %+v", st)
	}
	if st.MegviiCalls[megvii.EndpointGetResult] != 12 {
		t.Fatalf("get_result calls %d, want 12", st.MegviiCalls[megvii.EndpointGetResult])
	}
}

// Topics whose settings break the laws are refused at start, with a message
// naming the topic and the setting.
func TestRefusesTopicsThatBreakTheLaws(t *testing.T) {
	for _, c := range []struct {
		name      string
		cfg       devkafka.Config
		want      string
		minRawMsg int
	}{
		{"state not compacted", devkafka.Config{Topics: []string{evTopic, stTopic, rawTopic, dlqTopic}, MaxMessageBytes: 64 << 20}, "cleanup.policy", 0},
		{"raw too small", devkafka.Config{Topics: []string{evTopic, stTopic, rawTopic, dlqTopic}, MaxMessageBytes: 128 << 10, Compacted: []string{stTopic}}, "max.message.bytes", 0},
		{"state missing", devkafka.Config{Topics: []string{evTopic, rawTopic, dlqTopic}, MaxMessageBytes: 64 << 20}, stTopic, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := devkafka.Start(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			_, err = New(context.Background(), Config{Kafka: bus.Plain(b.Addr()), GroupID: "g", EventsTopic: evTopic, StateTopic: stTopic, RawTopic: rawTopic, DLQTopic: dlqTopic,
				MinRawMessageBytes: c.minRawMsg, Engine: engineConfig(func(c *EngineConfig) { c.Policy, c.Answers = schedule.Defaults(), objstore.NewMemory() })})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}
