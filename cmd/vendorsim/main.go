// Command vendorsim simulates the Megvii FaceID Lite and Baidu H5 faceprint
// APIs on loopback ports for development, tests, benchmarks and demos.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	oklog "github.com/oklog/run"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/ops"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

type flags struct {
	megviiAddr, baiduAddr, controlAddr, addrFile string
	logLevel                                     string
	clockStart                                   string
	clockScale                                   float64
	dispatchInterval                             time.Duration
	megviiDefaults, baiduDefaults                string
	cfg                                          vendorsim.Config
}

func parse(args []string, getenv func(string) string, help io.Writer) (*flags, error) {
	fs := config.NewFlagSet("vendorsim", `Simulates the Megvii FaceID Lite and Baidu H5 faceprint APIs as their documents
describe them: verifications that progress on a schedule, signed Megvii callbacks
and Baidu browser redirects, retention windows and the one-shot get_result budget,
concurrency and QPS limits, latency, injected faults, JPEG images and MP4 videos.
Time is a simulated clock that can run faster than real time or be driven through
the control API (POST /sim/clock). The control address also serves /sim/ (create
verifications, inspect per-verification call counts, queue faults), /metrics,
/healthz and /readyz. For development and tests only.`)
	f := &flags{}
	c := &f.cfg
	fs.StringVar(&f.megviiAddr, "megvii-addr", "127.0.0.1:18001", "address serving the Megvii API (/faceid/lite/...)")
	fs.StringVar(&f.baiduAddr, "baidu-addr", "127.0.0.1:18002", "address serving the Baidu API (/oauth/2.0/token, /rpc/2.0/..., media URLs)")
	fs.StringVar(&f.controlAddr, "control-addr", "127.0.0.1:18003", "address serving /sim/ control, /metrics, /healthz, /readyz")
	fs.StringVar(&f.addrFile, "addr-file", "", "write the bound URLs as JSON to this file once listening (useful with port 0)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of ids, latency and fault draws (same seed, same run)")
	fs.StringVar(&f.clockStart, "clock-start", "", "simulated start time, RFC 3339 (default: the real time at start)")
	fs.Float64Var(&f.clockScale, "clock-scale", 1, "simulated seconds per real second; 0 freezes the clock (drive it with POST /sim/clock)")
	fs.DurationVar(&f.dispatchInterval, "dispatch-interval", 100*time.Millisecond, "how often due callbacks and redirects are delivered (real time)")

	fs.DurationVar(&c.MegviiRetention, "megvii-retention", 24*time.Hour, "how long get_result answers after get_token (document 000: one day)")
	fs.DurationVar(&c.MegviiWindowLead, "megvii-window-lead", 0, "start the get_result window this long before get_token (neither document says when it starts): tests that a harvester configured conservatively still harvests")
	fs.IntVar(&c.MegviiCallBudget, "megvii-call-budget", 1, "get_result calls per verification that return data (document 000: only the first)")
	fs.IntVar(&c.MegviiLimits.Concurrency, "megvii-concurrency", 0, "Megvii requests in flight at once before CONCURRENCY_LIMIT_EXCEEDED; 0 = unlimited")
	fs.Float64Var(&c.MegviiLimits.QPS, "megvii-qps", 0, "Megvii requests per real second before CONCURRENCY_LIMIT_EXCEEDED; 0 = unlimited")
	fs.StringVar(&c.MegviiCallbackFormat, "megvii-callback-format", "form", "callback body: form (document 000) or json (document 002)")
	fs.StringVar(&c.MegviiNotifyURL, "megvii-notify-url", "", "notify_url for verifications created through /sim/ without one")

	fs.DurationVar(&c.BaiduAccessTokenTTL, "baidu-access-token-ttl", 30*24*time.Hour, "lifetime of a minted access_token")
	fs.DurationVar(&c.BaiduVerifyTokenTTL, "baidu-verify-token-ttl", 2*time.Hour, "how long a verify_token can start a verification")
	fs.DurationVar(&c.BaiduRetention, "baidu-retention", 72*time.Hour, "how long the query endpoints answer after verification")
	fs.DurationVar(&c.BaiduMediaRetention, "baidu-media-retention", 24*time.Hour, "how long media/query URLs (videos and their images) work after verification")
	fs.IntVar(&c.BaiduLimits.Concurrency, "baidu-concurrency", 0, "Baidu requests in flight at once before error 18; 0 = unlimited")
	fs.Float64Var(&c.BaiduLimits.QPS, "baidu-qps", 0, "Baidu requests per real second before error 18; 0 = unlimited")
	fs.StringVar(&c.BaiduSuccessURL, "baidu-success-url", "", "success landing the simulated browser is redirected to (verify_token appended)")
	fs.StringVar(&c.BaiduFailureURL, "baidu-failure-url", "", "failure landing the simulated browser is redirected to")
	fs.StringVar(&c.BaiduPublicURL, "baidu-public-url", "", "root of media URLs handed out (default: http:// + the bound Baidu address)")

	fs.DurationVar(&c.Latency.P50, "latency-p50", 0, "median added service time of API calls (log-normal); 0 = none")
	fs.DurationVar(&c.Latency.P99, "latency-p99", 0, "99th percentile of added service time")
	fs.Float64Var(&c.Faults.Internal, "fault-internal", 0, "probability of an internal-error answer (HTTP 500)")
	fs.Float64Var(&c.Faults.HTML, "fault-html", 0, "probability of a 502 HTML gateway page")
	fs.Float64Var(&c.Faults.Reset, "fault-reset", 0, "probability of a connection reset without an answer")
	fs.Float64Var(&c.Faults.Slow, "fault-slow", 0, "probability of a body that pauses halfway for --slow-pause")
	fs.Float64Var(&c.Faults.Malformed, "fault-malformed", 0, "probability of a 200 answer whose JSON is cut in half")
	fs.Float64Var(&c.Faults.TruncatedBase64, "fault-truncated-base64", 0, "probability that images' base64 payloads lose their last characters")
	fs.StringVar(&f.megviiDefaults, "megvii-defaults", "", `JSON of the fields (as POST /sim/megvii/verifications takes them) that shape verifications started by get_token, and the defaults of those created through /sim/, e.g. {"final_after":"20s"}`)
	fs.StringVar(&f.baiduDefaults, "baidu-defaults", "", `JSON of the fields (as POST /sim/baidu/verifications takes them) that shape verifications started by verifyToken/generate, and the defaults of those created through /sim/, e.g. {"complete_after":"15s"}`)
	fs.DurationVar(&c.SlowPause, "slow-pause", 200*time.Millisecond, "pause inside a slow body (real time)")
	fs.IntVar(&c.ImageBytes, "image-bytes", 32<<10, "size of each simulated JPEG")
	fs.Int64Var(&c.VideoBytes, "video-bytes", 1<<20, "size of each simulated MP4")
	fs.IntVar(&c.CallbackRetries, "callback-retries", 8, "deliveries tried per callback or redirect")
	fs.DurationVar(&c.CallbackBackoff, "callback-backoff", 5*time.Second, "simulated time before the first retry, doubling after")
	fs.Secret("FACEHARVEST_MEGVII_API_KEY", "the api_key the simulated Megvii accepts (required)")
	fs.Secret("FACEHARVEST_MEGVII_API_SECRET", "the api_secret it accepts and signs callbacks with (required; the first of a comma-separated list)")
	fs.Secret("FACEHARVEST_BAIDU_API_KEY", "the client_id the simulated Baidu accepts (required)")
	fs.Secret("FACEHARVEST_BAIDU_SECRET_KEY", "the client_secret it accepts (required)")
	if err := fs.Parse(args, getenv, help); err != nil {
		return nil, err
	}
	for _, p := range []float64{c.Faults.Internal, c.Faults.HTML, c.Faults.Reset, c.Faults.Slow, c.Faults.Malformed, c.Faults.TruncatedBase64} {
		if p < 0 || p > 1 {
			return nil, fmt.Errorf("fault probabilities must be between 0 and 1")
		}
	}
	if c.MegviiCallbackFormat != "form" && c.MegviiCallbackFormat != "json" {
		return nil, fmt.Errorf("--megvii-callback-format %q: want form or json", c.MegviiCallbackFormat)
	}
	if f.clockScale < 0 {
		return nil, fmt.Errorf("--clock-scale must not be negative")
	}
	for _, d := range []struct {
		flag, v string
		dst     any
	}{{"--megvii-defaults", f.megviiDefaults, &c.DefaultMegvii}, {"--baidu-defaults", f.baiduDefaults, &c.DefaultBaidu}} {
		if d.v == "" {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(d.v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(d.dst); err != nil {
			return nil, fmt.Errorf("%s: %v", d.flag, err)
		}
	}
	if c.MegviiCallBudget < 1 {
		return nil, fmt.Errorf("--megvii-call-budget must be at least 1")
	}
	for _, sec := range []struct {
		env string
		dst *string
	}{{"FACEHARVEST_MEGVII_API_KEY", &c.MegviiAPIKey}, {"FACEHARVEST_MEGVII_API_SECRET", &c.MegviiAPISecret},
		{"FACEHARVEST_BAIDU_API_KEY", &c.BaiduAPIKey}, {"FACEHARVEST_BAIDU_SECRET_KEY", &c.BaiduSecretKey}} {
		env, dst := sec.env, sec.dst
		l, err := config.LoadSecretList(getenv, nil, env)
		if err != nil {
			return nil, err
		}
		if len(l) == 0 {
			return nil, fmt.Errorf("%s (or %s_FILE) must be set: the simulator checks callers' credentials", env, env)
		}
		*dst = l[0].Reveal()
	}
	return f, nil
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	f, err := parse(args, getenv, stdout)
	if err != nil {
		return config.ExitCode("vendorsim", stderr, err)
	}
	log, err := ops.NewLogger(stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "vendorsim: %v\n", err)
		return 2
	}
	start := time.Now()
	if f.clockStart != "" {
		if start, err = time.Parse(time.RFC3339, f.clockStart); err != nil {
			fmt.Fprintf(stderr, "vendorsim: --clock-start: %v\n", err)
			return 2
		}
	}
	if err := serve(f, start, log, stdout); err != nil {
		var sig *oklog.SignalError
		if errors.As(err, &sig) {
			log.Info("stopped", "signal", sig.Signal.String())
			return 0
		}
		log.Error("vendorsim failed", "err", err)
		return 1
	}
	return 0
}

func serve(f *flags, start time.Time, log *slog.Logger, stdout io.Writer) error {
	lns := map[string]net.Listener{}
	for name, addr := range map[string]string{"megvii": f.megviiAddr, "baidu": f.baiduAddr, "control": f.controlAddr} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return fmt.Errorf("listen %s (%s): %w", name, addr, err)
		}
		lns[name] = ln
	}
	urls := map[string]string{}
	for name, ln := range lns {
		urls[name] = "http://" + ln.Addr().String()
	}
	reg := ops.NewRegistry()
	cfg := f.cfg
	cfg.Clock = clock.NewSim(start, f.clockScale, nil)
	cfg.Registry = reg
	cfg.Logger = log
	if cfg.BaiduPublicURL == "" {
		cfg.BaiduPublicURL = urls["baidu"]
	}
	sim := vendorsim.New(cfg)

	control := ops.Mux(reg, nil)
	control.Handle("/sim/", sim.ControlHandler())
	var g oklog.Group
	grace := 10 * time.Second
	g.Add(ops.ServeActor(ops.NewServer(sim.MegviiHandler(), log), lns["megvii"], grace, nil))
	g.Add(ops.ServeActor(ops.NewServer(sim.BaiduHandler(), log), lns["baidu"], grace, nil))
	g.Add(ops.ServeActor(ops.NewServer(control, log), lns["control"], grace, nil))
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error { return sim.Run(ctx, f.dispatchInterval) }, func(error) { cancel() })
	g.Add(ops.SignalActor(os.Interrupt, syscall.SIGTERM))

	b, _ := json.Marshal(urls)
	if f.addrFile != "" {
		if err := os.WriteFile(f.addrFile, b, 0o644); err != nil {
			return fmt.Errorf("--addr-file: %w", err)
		}
	}
	fmt.Fprintln(stdout, string(b))
	log.Info("vendorsim listening", "megvii", urls["megvii"], "baidu", urls["baidu"], "control", urls["control"], "clock_scale", f.clockScale)
	return g.Run()
}
