package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/ops"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

const topic = contract.DefaultEventsTopic

func startBroker(t *testing.T, dir string, port int) *devkafka.Broker {
	t.Helper()
	b, err := devkafka.Start(devkafka.Config{DataDir: dir, Port: port, Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type live struct {
	url    string
	srv    *http.Server
	writer *bus.Writer
	done   chan struct{}
}

// startIngest serves ingest on real loopback TCP, publishing to brokers.
func startIngest(t *testing.T, brokers []string, mutate func(*Config)) *live {
	t.Helper()
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(brokers...), Topic: topic})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.LandingKeys = []config.Secret{config.NewSecret(landingKeyNew)}
	cfg.PublicURL = "http://" + ln.Addr().String()
	cfg.Registry = prometheus.NewRegistry()
	cfg.Logger = slog.New(slog.DiscardHandler)
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg, w)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	l := &live{url: "http://" + ln.Addr().String(), srv: ops.NewServer(s.Handler(), slog.New(slog.DiscardHandler)), writer: w, done: make(chan struct{})}
	go func() { _ = l.srv.Serve(ln); close(l.done) }()
	t.Cleanup(func() { _ = l.srv.Close(); _ = w.Close() })
	return l
}

// readTopic reads the topic, partition by partition, to the end each
// partition has when its read begins, until it has n messages or 30 s
// passed, and returns what the last read found.
func readTopic(t *testing.T, broker string, n int) []contract.Message {
	t.Helper()
	cl := bus.Plain(broker)
	ctx := context.Background()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		parts, err := bus.PartitionCount(ctx, cl, topic)
		if err != nil {
			t.Fatal(err)
		}
		var out []contract.Message
		for p := range parts {
			if err := bus.ReadRange(ctx, cl, topic, p, -1, func(m contract.Message) { out = append(out, m) }); err != nil {
				t.Fatal(err)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
	}
}

func header(m contract.Message, k string) string {
	v, _ := m.Header(k)
	return string(v)
}

func postJSON(url, auth string, body any) (int, []byte, error) {
	return postJSONWith(url, auth, nil, body)
}

func postJSONWith(url, auth string, hdr map[string]string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, rb, nil
}

// TestWithSimulatorAndBroker: the vendor simulator sends real signed
// callbacks and browser redirects to ingest over TCP; the customer's back
// end registers tokens; franz-go reads every event back with its headers.
func TestWithSimulatorAndBroker(t *testing.T) {
	b := startBroker(t, "", 0)
	defer b.Close()
	in := startIngest(t, []string{b.Addr()}, nil)
	clk := clock.NewSim(time.Now().UTC(), 0, nil)
	sim := vendorsim.New(vendorsim.Config{Clock: clk, MegviiAPIKey: "k", MegviiAPISecret: secretNew, BaiduAPIKey: "a", BaiduSecretKey: "s",
		MegviiNotifyURL: in.url + RouteMegviiCallback}) // Baidu pages: the signed URLs registration answers
	var regs []Registration
	for i := 0; i < 20; i++ {
		format := "form"
		if i%2 == 1 {
			format = "json"
		}
		c, err := sim.CreateMegvii(vendorsim.MegviiSpec{BizNo: fmt.Sprintf("order-%d", i), CallbackFormat: format})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, Registration{Vendor: "megvii", VerificationID: c.BizID, BizNo: c.BizNo})
	}
	for i := 0; i < 10; i++ {
		outcome := "success"
		if i%3 == 0 {
			outcome = "failure"
		}
		c, err := sim.CreateBaidu(vendorsim.BaiduSpec{Outcome: outcome})
		if err != nil {
			t.Fatal(err)
		}
		regs = append(regs, Registration{Vendor: "baidu", VerificationID: c.VerifyToken})
	}
	code, body, err := postJSON(in.url+RouteTokens, bearer, map[string]any{"tokens": regs})
	if err != nil || code != 202 {
		t.Fatalf("register: %d %s %v", code, body, err)
	}
	var answer struct {
		Registered []struct {
			Key        string `json:"key"`
			SuccessURL string `json:"success_url"`
			FailureURL string `json:"failure_url"`
		} `json:"registered"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatal(err)
	}
	pages := 0
	for _, r := range answer.Registered {
		if vt, ok := strings.CutPrefix(r.Key, "baidu:"); ok {
			if err := sim.SetBaiduPages(vt, r.SuccessURL, r.FailureURL); err != nil {
				t.Fatal(err)
			}
			pages++
		}
	}
	if pages != 10 {
		t.Fatalf("%d Baidu entries with landing URLs", pages)
	}
	clk.Advance(2 * time.Minute)
	if n := sim.DispatchDue(context.Background()); n != 30 {
		t.Fatalf("%d deliveries", n)
	}
	for _, st := range sim.States() {
		if !st.CallbackDelivered {
			t.Fatalf("not delivered: %+v", st)
		}
	}
	recs := readTopic(t, b.Addr(), 60)
	if len(recs) != 60 {
		t.Fatalf("%d records", len(recs))
	}
	types := map[string]int{}
	partitionOf := map[string]int{}
	for _, r := range recs {
		for _, h := range []string{contract.HeaderID, contract.HeaderSource, contract.HeaderType, contract.HeaderTime} {
			if header(r, h) == "" {
				t.Fatalf("record lacks %s", h)
			}
		}
		if header(r, contract.HeaderSpecVersion) != "1.0" || header(r, contract.HeaderContentType) != "application/json" {
			t.Fatal("specversion or content-type")
		}
		var ev contract.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != contract.Key(ev.Vendor, ev.VerificationID) {
			t.Fatalf("key %s for %s", r.Key, ev.VerificationID)
		}
		if p, ok := partitionOf[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s on partitions %d and %d", r.Key, p, r.Partition)
		}
		partitionOf[string(r.Key)] = r.Partition
		types[header(r, contract.HeaderType)]++
	}
	if types[contract.TypeTokenRegistered] != 30 || types[contract.TypeMegviiCallback] != 20 || types[contract.TypeBaiduCompletion] != 10 {
		t.Fatalf("types %v", types)
	}
}

// TestBrokerDownThenBack: with the broker gone, requests are answered 503
// and nothing is acknowledged; once it is back (restarted from its data
// directory), the retried requests succeed and every acknowledged event is
// there.
func TestBrokerDownThenBack(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, 0)
	port := b.Port()
	// A publish is given 30 s: long enough for a busy machine's first write,
	// and at most what a request waits while the broker is gone.
	in := startIngest(t, []string{b.Addr()}, func(c *Config) { c.PublishTimeout = 30 * time.Second })
	reg := func(id string) (int, []byte) {
		code, body, err := postJSON(in.url+RouteTokens, bearer, Registration{Vendor: "baidu", VerificationID: id})
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	if code, body := reg("before"); code != 202 {
		t.Fatalf("before: %d %s", code, body)
	}
	b.Close()
	code, body := reg("during")
	if code != 503 || !strings.Contains(string(body), "retry") {
		t.Fatalf("broker down: %d %s", code, body)
	}
	b = startBroker(t, dir, port)
	defer b.Close()
	for deadline := time.Now().Add(3 * time.Minute); ; {
		code, body = reg("during")
		if code == 202 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not acknowledged 3 minutes after the broker came back: %d %s", code, body)
		}
	}
	ids := map[string]bool{}
	for _, r := range readTopic(t, b.Addr(), 2) {
		var ev contract.Event
		_ = json.Unmarshal(r.Value, &ev)
		ids[ev.VerificationID] = true
	}
	if !ids["before"] || !ids["during"] {
		t.Fatalf("events after restart: %v", ids)
	}
}

// TestShutdownUnderLoadLosesNothing: requests keep coming while the server
// shuts down; every request answered 2xx has its event in the topic.
func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	b := startBroker(t, "", 0)
	defer b.Close()
	in := startIngest(t, []string{b.Addr()}, nil)
	var (
		mu       sync.Mutex
		ackedIDs []string
		count    atomic.Int64
		wg       sync.WaitGroup
	)
	halfway := make(chan struct{})
	var once sync.Once
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				code, body, err := postJSON(in.url+RouteTokens, bearer, Registration{Vendor: "megvii", VerificationID: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil || code != 202 {
					return // the server is gone or going: stop this worker
				}
				var out struct {
					Registered []struct{ ID string } `json:"registered"`
				}
				_ = json.Unmarshal(body, &out)
				mu.Lock()
				ackedIDs = append(ackedIDs, out.Registered[0].ID)
				mu.Unlock()
				if count.Add(1) == 200 {
					once.Do(func() { close(halfway) })
				}
			}
		}(w)
	}
	<-halfway
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := in.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := in.writer.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(ackedIDs) < 200 {
		t.Fatalf("only %d acknowledged", len(ackedIDs))
	}
	inTopic := map[string]bool{}
	for _, r := range readTopic(t, b.Addr(), len(ackedIDs)) {
		inTopic[header(r, contract.HeaderID)] = true
	}
	for _, id := range ackedIDs {
		if !inTopic[id] {
			t.Fatalf("acknowledged event %s is not in the topic (%d acknowledged, %d in topic)", id, len(ackedIDs), len(inTopic))
		}
	}
}
