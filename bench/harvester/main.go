// Command harvester benchmarks the harvester engine against the vendor
// simulator over loopback HTTP: throughput as a fraction of the simulated
// vendor's capacity, deadline misses under a burst compared with a plain
// FIFO consumer of the same work, and state restore time and memory for
// many pending verifications. It prints a table and writes JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/harvester"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

func main() {
	n := flag.Int("verifications", 3000, "verifications in the throughput run")
	pending := flag.Int("pending", 1000000, "pending verifications in the restore run")
	out := flag.String("out", "bin/bench-harvester.json", "where to write the JSON figures")
	only := flag.String("only", "", "run only this part: throughput, burst or restore (empty: all)")
	restoreProfile := flag.String("restore-cpuprofile", "", "write a CPU profile of the restore to this file")
	flag.Parse()
	report := map[string]any{}
	fmt.Println("harvester benchmark (2 cores shared by the simulator, the engine and the broker)")
	for _, c := range []struct {
		name    string
		over    int
		publish time.Duration
	}{{"throughput_engine_limit_1x", 1, 0}, {"throughput_engine_limit_2x", 2, 0}, {"throughput_engine_limit_1x_publish_5ms", 1, 5 * time.Millisecond}} {
		if *only != "" && *only != "throughput" {
			break
		}
		r, err := throughput(*n, 16, 16*c.over, c.publish)
		if err != nil {
			fail(err)
		}
		report[c.name] = r
		fmt.Printf("throughput, vendor limit 16 in flight at 20 ms (capacity 800/s), engine limit %2d, recording an answer %s: %6.0f calls/s = %.2f of capacity, %.2f%% rejected for concurrency (goals: >= 0.90, < 2%%)\n",
			16*c.over, c.publish, r.PerSecond, r.Fraction, 100*r.RejectedShare)
	}
	if *only == "" || *only == "burst" {
		dl, err := burst(false)
		if err != nil {
			fail(err)
		}
		fifo, err := burst(true)
		if err != nil {
			fail(err)
		}
		report["burst_deadline_first"], report["burst_fifo"] = dl, fifo
		fmt.Printf("burst of 3x capacity (%d verifications, windows 1-10 s left): deadline-first missed %d, FIFO missed %d\n", dl.Verifications, dl.Missed, fifo.Missed)
	}
	if *only != "" && *only != "restore" {
		writeReport(*out, report)
		return
	}
	rs, err := restore(*pending, *restoreProfile)
	if err != nil {
		fail(err)
	}
	report["restore"] = rs
	fmt.Printf("restore of %d pending verifications from the state topic: %.2f s (goal < 10 s); resident heap %.0f bytes each (goal < 300)\n", rs.Pending, rs.Seconds, rs.BytesEach)
	writeReport(*out, report)
}

func writeReport(out string, report map[string]any) {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		fail(err)
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench harvester:", err)
	os.Exit(1)
}

// nullStore and nullRaw acknowledge at once: these runs measure scheduling
// and calling, not the broker.
type nullStore struct{}

func (nullStore) Save(context.Context, int, string, *harvester.StateRecord) error { return nil }

type nullRaw struct{ delay time.Duration } // delay: an acks=all round trip

func (r nullRaw) WriteMessages(context.Context, ...contract.Message) error {
	time.Sleep(r.delay)
	return nil
}

type simRig struct {
	sim *vendorsim.Sim
	mc  *megvii.Client
	srv *httptest.Server
}

func newSim(conc int, latency time.Duration) *simRig {
	sim := vendorsim.New(vendorsim.Config{Clock: clock.NewSim(time.Now(), 1, nil), MegviiAPIKey: "k", MegviiAPISecret: "s", BaiduAPIKey: "a", BaiduSecretKey: "b",
		MegviiLimits: vendorsim.Limits{Concurrency: conc}, Latency: vendorsim.Latency{P50: latency, P99: latency}, ImageBytes: 512, MegviiRetention: time.Hour})
	srv := httptest.NewServer(sim.MegviiHandler())
	mc, _ := megvii.New(megvii.Config{BaseURL: srv.URL, APIKey: config.NewSecret("k"), APISecret: config.NewSecret("s")})
	return &simRig{sim: sim, mc: mc, srv: srv}
}

// Throughput is one throughput run.
type Throughput struct {
	Verifications int     `json:"verifications"`
	Seconds       float64 `json:"seconds"`
	PerSecond     float64 `json:"calls_per_second"`
	Capacity      float64 `json:"capacity_per_second"`
	Fraction      float64 `json:"fraction_of_capacity"`
	RejectedShare float64 `json:"rejected_share"`
}

func engineFor(r *simRig, limit int, pol schedule.Policy, fifo bool, publish time.Duration) *harvester.Engine {
	return harvester.NewEngine(engineConfig(func(c *harvester.EngineConfig) {
		c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.FIFO = pol, map[contract.Vendor]harvester.Caller{contract.Megvii: harvester.MegviiCaller{Client: r.mc}}, map[contract.Vendor]harvester.VendorLimits{contract.Megvii: {Concurrency: limit}}, nullStore{}, nullRaw{publish}, fifo
	}))
}

// throughput harvests n verifications due at once; publish is how long
// recording each answer takes (a broker's acks=all round trip).
func throughput(n, vendorConc, engineConc int, publish time.Duration) (Throughput, error) {
	const latency = 20 * time.Millisecond
	r := newSim(vendorConc, latency)
	defer r.srv.Close()
	eng := engineFor(r, engineConc, schedule.Defaults(), false, publish)
	eng.AddPartition(0, nil)
	now := time.Now()
	for i := 0; i < n; i++ {
		c, err := r.sim.CreateMegvii(vendorsim.MegviiSpec{StartAfter: vendorsim.Duration(time.Nanosecond), FinalAfter: vendorsim.Duration(time.Nanosecond), NoCallback: true})
		if err != nil {
			return Throughput{}, err
		}
		<-eng.Apply(0, contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: c.BizID, Status: "OK", ReceivedAt: now})
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	for eng.Pending() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(start).Seconds()
	cancel()
	<-done
	st := r.sim.Stats()
	calls := st.MegviiCalls[megvii.EndpointGetResult]
	rejected := calls - st.MegviiServed
	capacity := float64(vendorConc) / latency.Seconds()
	return Throughput{Verifications: n, Seconds: el, PerSecond: float64(n) / el, Capacity: capacity, Fraction: float64(n) / el / capacity,
		RejectedShare: float64(rejected) / float64(calls)}, nil
}

// Burst is one burst run.
type Burst struct {
	Verifications int  `json:"verifications"`
	Missed        int  `json:"missed"`
	FIFO          bool `json:"fifo"`
}

// burst gives the engine three times what the vendor can do before the
// windows close: windows of 1 to 10 s left, capacity 800 calls/s, 4 s of
// work arriving at once... but only about 2.7 s of it can fit before the
// shortest windows close.
func burst(fifo bool) (Burst, error) {
	r := newSim(8, 20*time.Millisecond) // 400 calls/s
	defer r.srv.Close()
	pol := schedule.Defaults()
	pol.MegviiRetention, pol.MegviiLastChance = 10*time.Second, 500*time.Millisecond
	eng := engineFor(r, 8, pol, fifo, 0)
	eng.AddPartition(0, nil)
	n := 3 * 400 * 3 // three seconds of three times capacity
	now := time.Now()
	var wg sync.WaitGroup
	// Verifications arrive in random deadline order, as they would.
	for i := 0; i < n; i++ {
		c, err := r.sim.CreateMegvii(vendorsim.MegviiSpec{StartAfter: vendorsim.Duration(time.Nanosecond), FinalAfter: vendorsim.Duration(time.Nanosecond), NoCallback: true})
		if err != nil {
			return Burst{}, err
		}
		left := time.Second + time.Duration(i*7919%n)*9*time.Second/time.Duration(n)
		issued := now.Add(left - pol.MegviiRetention)
		wg.Add(1)
		go func(ch <-chan struct{}) { <-ch; wg.Done() }(eng.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: c.BizID, IssuedAt: &issued, ReceivedAt: now}))
		<-eng.Apply(0, contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: c.BizID, Status: "OK", ReceivedAt: now})
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = eng.Run(ctx); close(done) }()
	for eng.Pending() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	return Burst{Verifications: n, Missed: n - r.sim.Stats().MegviiServed, FIFO: fifo}, nil
}

// Restore is the restore run.
type Restore struct {
	Pending   int     `json:"pending"`
	Seconds   float64 `json:"seconds"`
	BytesEach float64 `json:"heap_bytes_each"`
}

func restore(n int, profile string) (Restore, error) {
	b, err := devkafka.Start(devkafka.Config{Partitions: 1, Topics: []string{"bench.events", "bench.state", "bench.raw", "bench.dlq"}, MaxMessageBytes: 64 << 20, Compacted: []string{"bench.state"}})
	if err != nil {
		return Restore{}, err
	}
	defer b.Close()
	w := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(b.Addr()), Topic: "bench.state", BatchSize: 2000})
	pol := schedule.Defaults()
	base := time.Now()
	batch := make([]contract.Message, 0, 10000)
	for i := 0; i < n; i++ {
		issued := base.Add(-time.Duration(i%3600) * time.Second)
		st := pol.Apply(nil, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: fmt.Sprintf("%d,%08x-bench", base.Unix(), i), BizNo: fmt.Sprintf("order-%d", i), IssuedAt: &issued, ReceivedAt: issued})
		batch = append(batch, contract.Message{Key: []byte(st.Key()), Value: harvester.MarshalRecord(&harvester.StateRecord{State: st})})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				msg := err.Error()
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				return Restore{}, fmt.Errorf("writing the state topic: %s", msg)
			}
			batch = batch[:0]
		}
	}
	_ = w.Close()
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	h, err := harvester.New(context.Background(), harvester.Config{Kafka: bus.Plain(b.Addr()), GroupID: "bench", EventsTopic: "bench.events", StateTopic: "bench.state", RawTopic: "bench.raw", DLQTopic: "bench.dlq",
		Engine: engineConfig(func(c *harvester.EngineConfig) {
			c.Policy, c.Callers, c.Answers = pol, map[contract.Vendor]harvester.Caller{}, objstore.NewMemory()
		})})
	if err != nil {
		return Restore{}, err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return Restore{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return Restore{}, err
		}
	}
	start := time.Now()
	if err := h.RestoreInto(context.Background(), 0); err != nil {
		return Restore{}, err
	}
	el := time.Since(start).Seconds()
	pprof.StopCPUProfile()
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	got := h.Engine().Pending()
	runtime.KeepAlive(h)
	if got != n {
		return Restore{}, fmt.Errorf("restored %d of %d", got, n)
	}
	return Restore{Pending: n, Seconds: el, BytesEach: float64(m1.HeapAlloc-m0.HeapAlloc) / float64(n)}, nil
}

// engineConfig is the engine's DefaultConfig changed by set.
func engineConfig(set func(*harvester.EngineConfig)) harvester.EngineConfig {
	c := harvester.DefaultConfig()
	set(&c)
	return c
}
