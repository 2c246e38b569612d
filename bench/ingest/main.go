// Command ingest measures the ingest service against a baseline in the same
// run: a bare net/http handler that writes each request body through the
// same tuned kafka-go writer (acks=all) to the same embedded broker. Load
// comes from wrk, a separate process, with signed Megvii callbacks. It
// prints a table and writes the figures as JSON.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

const secret = "bench-megvii-secret"

// Result is one wrk run.
type Result struct {
	Name        string  `json:"name"`
	RequestsSec float64 `json:"requests_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Requests    int64   `json:"requests"`
	Non2xx      int64   `json:"non_2xx"`
	Errors      int64   `json:"socket_errors"`
}

func main() {
	dur := flag.Duration("duration", 5*time.Second, "length of each wrk run")
	conns := flag.Int("connections", 128, "wrk connections")
	rounds := flag.Int("rounds", 9, "alternating rounds of baseline and ingest (short and many: the median of their ratios is robust to a noisy neighbour slowing some)")
	out := flag.String("out", "bin/bench-ingest.json", "where to write the JSON figures")
	profile := flag.String("cpuprofile", "", "write CPU profiles of the process during each run to this path with .baseline.N and .ingest.N appended")
	flag.Parse()
	if err := run(*dur, *conns, *rounds, *out, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "bench ingest:", err)
		os.Exit(1)
	}
}

func run(dur time.Duration, conns, rounds int, out, profile string) error {
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk not found: install it (apt-get install wrk); make bench does")
	}
	// The broker keeps only recent data, as a real one with retention would:
	// an ever-growing in-memory log would make its garbage collection the
	// thing measured. Segments are small so that retention can drop them
	// and the broker never stalls copying a large one as it grows.
	b, err := devkafka.Start(devkafka.Config{Topics: []string{"bench.baseline", "bench.ingest"}, Partitions: 3, RetentionBytes: 16 << 20, SegmentBytes: 4 << 20})
	if err != nil {
		return err
	}
	defer b.Close()
	stopRetention := make(chan struct{})
	defer close(stopRetention)
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRetention:
				return
			case <-t.C:
				b.ApplyRetention()
			}
		}
	}()
	brokers := []string{b.Addr()}

	baseW := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(brokers...), Topic: "bench.baseline"})
	defer baseW.Close()
	// Tuned as ingest is: the body is read into a buffer of the announced
	// size (io.ReadAll grows one step by step, 2-3 us a request more), taken
	// from a pool and given back once the broker acknowledged it.
	var bodies sync.Pool
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		var err error
		if n := int(r.ContentLength); n > 0 {
			if p, ok := bodies.Get().(*[]byte); ok && cap(*p) >= n {
				body = (*p)[:n]
			} else {
				body = make([]byte, n)
			}
			_, err = io.ReadFull(r.Body, body)
		} else {
			body, err = io.ReadAll(r.Body)
		}
		if err != nil {
			w.WriteHeader(400)
			return
		}
		if err := baseW.WriteMessages(r.Context(), contract.Message{Value: body}); err != nil {
			w.WriteHeader(503)
			return
		}
		bodies.Put(&body)
		w.WriteHeader(200)
	})
	ingW := bus.NewWriter(bus.WriterConfig{Cluster: bus.Plain(brokers...), Topic: "bench.ingest"})
	defer ingW.Close()
	cfg := ingest.DefaultConfig()
	cfg.MegviiSecrets = []config.Secret{config.NewSecret("rotated-out"), config.NewSecret(secret)}
	cfg.BearerTokens, cfg.Registry, cfg.Logger = []config.Secret{config.NewSecret("t")}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler)
	srv, err := ingest.New(cfg, ingW)
	if err != nil {
		return err
	}
	baseURL, err := serve(bare)
	if err != nil {
		return err
	}
	ingURL, err := serve(srv.Handler())
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "faceharvest-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "callbacks.lua")
	if err := writeScript(script, 512); err != nil {
		return err
	}
	// Warm both paths (connections, metadata) before measuring.
	for _, u := range []string{baseURL, ingURL} {
		if _, err := wrk(u, script, 2*time.Second, conns, "warmup"); err != nil {
			return err
		}
	}
	var base, ing []Result
	for i := 0; i < rounds; i++ {
		r, err := profiled(profile, fmt.Sprintf("baseline.%d", i), func() (Result, error) {
			return wrk(baseURL, script, dur, conns, "baseline: bare handler + kafka-go")
		})
		if err != nil {
			return err
		}
		base = append(base, r)
		r, err = profiled(profile, fmt.Sprintf("ingest.%d", i), func() (Result, error) {
			return wrk(ingURL, script, dur, conns, "ingest: signature + CloudEvents")
		})
		if err != nil {
			return err
		}
		ing = append(ing, r)
	}
	// Each round runs baseline and ingest back to back; the median of the
	// rounds' ratios is robust to a noisy neighbour slowing one run.
	ratios := make([]float64, len(base))
	for i := range base {
		ratios[i] = ing[i].RequestsSec / base[i].RequestsSec
	}
	sort.Float64s(ratios)
	ratio := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 { // the mean of the middle two, not the higher
		ratio = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	ib := best(append([]Result(nil), ing...))
	fmt.Printf("\ningest benchmark: wrk -c%d, %s per run, %d rounds, acks=all, embedded broker (kfake), 2 cores shared by all\n", conns, dur, rounds)
	fmt.Printf("%-38s %12s %9s %9s %8s\n", "", "req/s", "p50 ms", "p99 ms", "non-2xx")
	for _, r := range append(base, ing...) {
		fmt.Printf("%-38s %12.0f %9.2f %9.2f %8d\n", r.Name, r.RequestsSec, r.P50ms, r.P99ms, r.Non2xx)
	}
	fmt.Printf("throughput ratio ingest/baseline, median of rounds: %.2f (goal >= 0.65); ingest p99 in its best run %.2f ms (goal < 20)\n", ratio, ib.P99ms)
	report := map[string]any{"baseline": base, "ingest": ing, "ratio_median": ratio, "ratios": ratios, "ingest_best_p99_ms": ib.P99ms, "connections": conns, "duration_s": dur.Seconds()}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(report, "", "  ")
	return os.WriteFile(out, j, 0o644)
}

// profiled runs f, writing a CPU profile of the process to path.suffix
// while it runs when path is set.
func profiled(path, suffix string, f func() (Result, error)) (Result, error) {
	if path == "" {
		return f()
	}
	out, err := os.Create(path + "." + suffix)
	if err != nil {
		return Result{}, err
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		return Result{}, err
	}
	defer pprof.StopCPUProfile()
	return f()
}

func best(rs []Result) Result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].RequestsSec > rs[j].RequestsSec })
	return rs[0]
}

func serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.Serve(ln) }()
	return "http://" + ln.Addr().String() + ingest.RouteMegviiCallback, nil
}

// writeScript writes a wrk Lua script cycling through n signed callbacks,
// each for a distinct verification, built from the document's example.
func writeScript(path string, n int) error {
	sim := vendorsim.New(vendorsim.Config{MegviiAPIKey: "k", MegviiAPISecret: secret, BaiduAPIKey: "a", BaiduSecretKey: "s"})
	var sb strings.Builder
	sb.WriteString("local bodies = {\n")
	for i := 0; i < n; i++ {
		c, err := sim.CreateMegvii(vendorsim.MegviiSpec{BizNo: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			return err
		}
		data := sim.CallbackData(c.BizID)
		body := megvii.Callback{Data: data, Sign: megvii.Sign(secret, data)}.EncodeForm()
		sb.WriteString(strconv.Quote(string(body)))
		sb.WriteString(",\n")
	}
	sb.WriteString(`}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[(i % #bodies) + 1])
end
`)
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

var (
	reRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	rePct     = regexp.MustCompile(`^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reTotal   = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrk(url, script string, d time.Duration, conns int, name string) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-s", script, url)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk: %v\n%s", err, outb)
	}
	r := Result{Name: name}
	sc := bufio.NewScanner(strings.NewReader(string(outb)))
	for sc.Scan() {
		line := sc.Text()
		if m := rePct.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			switch m[3] {
			case "us":
				v /= 1000
			case "s":
				v *= 1000
			}
			if m[1] == "50" {
				r.P50ms = v
			} else {
				r.P99ms = v
			}
		}
	}
	if m := reRPS.FindStringSubmatch(string(outb)); m != nil {
		r.RequestsSec, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reTotal.FindStringSubmatch(string(outb)); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(string(outb)); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSockErr.FindStringSubmatch(string(outb)); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	if r.RequestsSec == 0 {
		return r, fmt.Errorf("could not read wrk's output:\n%s", outb)
	}
	return r, nil
}
