// Command devstack runs the whole faceharvest pipeline on loopback as
// separate processes (the embedded Kafka-protocol broker, MinIO, the vendor
// simulator, ingest, harvester and archiver), drives a workload of Megvii
// and Baidu verifications through it, shows progress, and prints a summary.
// It is what `make run` starts; Ctrl-C stops everything it started.
package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/buildinfo"
	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

func main() { os.Exit(run()) }

type opts struct {
	bin, dataDir                 string
	megvii, megviiNoCB, megviiEx int
	megviiUnregistered           int
	baidu, baiduNever            int
	exitAfter, freePorts, fresh  bool
	chaos, auditCheck            bool
	chaosSeed                    uint64
	replicas                     int
	large                        bool
	benchRate, benchSteadyRate   float64
	benchFor                     time.Duration
	benchOut                     string
	timeout                      time.Duration
}

// Development credentials: the simulator accepts them, the components read
// them from their environment like real ones.
var devEnv = []string{
	"FACEHARVEST_MEGVII_API_KEY=dev-megvii-key", "FACEHARVEST_MEGVII_API_SECRET=" + devMegviiSecret,
	"FACEHARVEST_BAIDU_API_KEY=dev-baidu-ak", "FACEHARVEST_BAIDU_SECRET_KEY=dev-baidu-sk",
	"FACEHARVEST_INGEST_TOKENS=dev-ingest-token",
	"AWS_ACCESS_KEY_ID=faceharvest", "AWS_SECRET_ACCESS_KEY=faceharvest-dev-password",
}

const (
	devMegviiSecret = "dev-megvii-secret"
	ingestToken     = "dev-ingest-token"
	bucket          = "faceharvest-evidence"
)

func run() int {
	var o opts
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `Usage: devstack [flags]

Starts the whole pipeline on loopback as separate processes: devkafka (the embedded
Kafka-protocol broker, persisting to --data-dir), MinIO, vendorsim (both vendor APIs),
ingest, harvester, archiver and auditor (the audit page, with bearer tokens generated into
--data-dir/auditor-tokens and printed). Then it drives a workload through it: Megvii verifications
with and without callbacks, Baidu verifications completed and never completed, some
registered after their window closed, under a simulated vendor concurrency limit that the
harvester must adapt to. It prints progress and a summary, then checks the audit side
(--audit-check): faceharvest show and the audit page answer for every verification, one audit
event per view, and a replay from the store restores a deleted faceid.results byte for byte;
with chromium installed, a Megvii and a Baidu page open in headless Chromium.
It keeps everything running
until Ctrl-C (or exits after the workload with --exit-after-workload). Windows are shortened
(Megvii 3 min, Baidu token window 1 min) so that the whole story takes about four minutes.

Flags:`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.bin, "bin", "bin", "directory with the built binaries (make build) and tools/minio (make minio)")
	fs.StringVar(&o.dataDir, "data-dir", ".faceharvest-dev", "broker and object-store data, logs")
	fs.BoolVar(&o.fresh, "fresh", true, "start from empty data (false: keep the broker's and store's data from the last run)")
	fs.IntVar(&o.megvii, "megvii", 60, "Megvii verifications with a callback")
	fs.IntVar(&o.megviiNoCB, "megvii-no-callback", 10, "Megvii verifications whose callback never arrives (harvested at the last chance)")
	fs.IntVar(&o.megviiUnregistered, "megvii-unregistered", 5, "of the Megvii verifications with a callback, how many are never registered through the token API (callback only)")
	fs.IntVar(&o.megviiEx, "megvii-expired", 5, "Megvii tokens registered after their window closed (expired)")
	fs.IntVar(&o.baidu, "baidu", 30, "Baidu verifications the user completes")
	fs.IntVar(&o.baiduNever, "baidu-never", 5, "Baidu verifications the user never completes (lost: after the token window Baidu answers as for a mismatched access_token)")
	fs.BoolVar(&o.large, "large", false, "also one Megvii verification whose get_result answer is about 20 MiB and one Baidu verification with a 200 MB video")
	fs.Float64Var(&o.benchRate, "bench-rate", 0, "benchmark instead of the workload: measure the store and the broker alone, then offer this many Megvii verifications per second (three 100 KB images each) and report throughput and callback-to-record latency")
	fs.Float64Var(&o.benchSteadyRate, "bench-steady-rate", 0, "with --bench-rate: first offer this many verifications per second, a rate the pipeline keeps up with, and report the latency there, then twice and four times as many (the sustained throughput must not fall as load grows); every phase reports its CPU per verification by process (from /proc), Kafka bytes and object-store requests per verification (0: skip)")
	fs.DurationVar(&o.benchFor, "bench-for", 30*time.Second, "how long the benchmark offers verifications at each rate")
	fs.StringVar(&o.benchOut, "bench-out", "", "write the benchmark's figures as JSON to this file")
	fs.BoolVar(&o.auditCheck, "audit-check", true, "after the workload: show every verification on faceid.results with the built faceharvest and on the audit page (its media too), open a Megvii and a Baidu page in headless Chromium when chromium is installed, count the audit events, then delete faceid.results, replay it from the store and compare (false: skip)")
	fs.BoolVar(&o.exitAfter, "exit-after-workload", false, "stop everything once every verification has its record")
	fs.BoolVar(&o.chaos, "chaos", false, "during the workload: SIGKILL archiver, harvester and ingest once each at random moments (a random replica of each) and restart them, stop and restart the broker from its data directory, and take the object store down for at least 5 s, until an archiver has met the outage")
	fs.Uint64Var(&o.chaosSeed, "chaos-seed", 0, "seed of --chaos's moments and replicas, to replay a run (0: a new one, printed)")
	fs.IntVar(&o.replicas, "replicas", 1, "harvester and archiver processes of each (they share partitions as one consumer group each)")
	fs.BoolVar(&o.freePorts, "free-ports", false, "use free ports instead of the documented ones (tests)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up waiting for records after this long")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Println(buildinfo.Read().String("devstack"))
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st := &stack{o: o}
	defer st.stopAll()
	if err := st.start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 1
	}
	if o.benchRate > 0 {
		rep, err := st.bench(ctx, o.benchRate, o.benchSteadyRate, o.benchFor, o.benchOut)
		if err != nil {
			fmt.Fprintln(os.Stderr, "devstack:", err)
			return 1
		}
		if rep.Lost > 0 {
			return 1
		}
		return 0
	}
	sum, err := st.workload(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		return 1
	}
	st.summary(sum)
	if !sum.ok() {
		return 1
	}
	if o.auditCheck {
		c, err := st.checkAudit(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "devstack: audit check:", err)
			return 1
		}
		if len(c.problems) > 0 {
			return 1
		}
	}
	if err := st.proveLedger(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack: evidence log:", err)
		return 1
	}
	if o.exitAfter {
		return 0
	}
	fmt.Println("\nEverything keeps running; Ctrl-C stops it all.")
	<-ctx.Done()
	return 0
}

type proc struct {
	name   string
	binary string
	args   []string
	cmd    *exec.Cmd
	done   chan struct{}
}

type stack struct {
	o        opts
	procs    []*proc
	ports    map[string]int
	minio    *devs3.Server
	minioBin string
	broker   string
	// landingKey signs ingest's Baidu landing URLs: generated for each run,
	// kept across ingest's restarts so that URLs handed out stay valid.
	landingKey string
	// auditorKey signs the audit page's login sessions; auditorTokens are
	// its bearer tokens (viewer, identity, and the audit check's own
	// viewer), written to a file in the data directory: all generated for
	// each run.
	auditorKey    string
	auditorTokens [3]string
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *stack) addr(name string) string { return "127.0.0.1:" + strconv.Itoa(s.ports[name]) }

func (s *stack) start(ctx context.Context) error {
	s.ports = map[string]int{"kafka": 9092, "minio": 9000, "megvii": 18001, "baidu": 18002, "sim": 18003,
		"ingest": 8028, "ingest-metrics": 9101, "harvester-metrics": 9102, "archiver-metrics": 9103,
		"auditor": 8090, "auditor-metrics": 9104}
	if s.o.replicas < 1 {
		return fmt.Errorf("--replicas %d: at least 1", s.o.replicas)
	}
	for i := 2; i <= s.o.replicas; i++ { // further replicas' metrics after the documented ports
		s.ports[fmt.Sprintf("harvester-%d-metrics", i)] = 9100 + 2*i
		s.ports[fmt.Sprintf("archiver-%d-metrics", i)] = 9101 + 2*i
	}
	if s.o.freePorts {
		for k := range s.ports {
			s.ports[k] = freePort()
		}
	}
	if s.o.fresh {
		_ = os.RemoveAll(s.o.dataDir)
	}
	logs := filepath.Join(s.o.dataDir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"kafka", "minio", "spool"} {
		_ = os.MkdirAll(filepath.Join(s.o.dataDir, d), 0o755)
	}
	fmt.Printf("faceharvest dev stack: logs in %s\n", logs)
	s.broker = s.addr("kafka")
	kafkaArgs := []string{"--port", strconv.Itoa(s.ports["kafka"]), "--data-dir", filepath.Join(s.o.dataDir, "kafka"), "--max-message-bytes", kafkaDefaultMaxMessageBytes}
	megviiSimLimit, megviiLimit := "4", "16" // the harvester must adapt to the vendor's 4
	if s.o.benchRate > 0 {
		kafkaArgs = append(kafkaArgs, "--topics", strings.Join([]string{contract.DefaultEventsTopic, "faceid.harvester.state", contract.DefaultRawTopic,
			contract.DefaultResultsTopic, contract.DefaultDLQTopic, contract.DefaultAuditTopic, ingest.DefaultIdempotencyTopic, benchTopic}, ","))
		megviiSimLimit, megviiLimit = "0", "64" // throughput: a vendor account sized for it
	}
	if err := s.spawn("devkafka", kafkaArgs...); err != nil {
		return err
	}
	mbin := filepath.Join(s.o.bin, "tools", "minio")
	if _, err := os.Stat(mbin); err != nil {
		if mbin, err = devs3.Binary("."); err != nil {
			return err
		}
	}
	var err error
	s.minioBin = mbin
	if s.minio, err = devs3.StartOn(mbin, filepath.Join(s.o.dataDir, "minio"), "faceharvest", "faceharvest-dev-password", s.addr("minio")); err != nil {
		return err
	}
	fmt.Printf("  %-10s %s (MinIO, bucket %s)\n", "store", s.minio.Endpoint, bucket)
	if err := s.startLedger(ctx); err != nil {
		return err
	}
	ingestURL := "http://" + s.addr("ingest")
	if err := s.spawn("vendorsim", "--megvii-addr", s.addr("megvii"), "--baidu-addr", s.addr("baidu"), "--control-addr", s.addr("sim"),
		"--megvii-retention", "3m", "--baidu-verify-token-ttl", "1m", "--baidu-retention", "10m", "--baidu-media-retention", "5m",
		"--megvii-concurrency", megviiSimLimit, "--latency-p50", "20ms", "--latency-p99", "150ms", "--image-bytes", "100000", "--video-bytes", "2000000",
		"--callback-backoff", "2s",
		// Verifications started by get_token and verifyToken/generate (the
		// tokens the workload issues through ingest) take the same course as
		// those it creates through /sim/.
		"--megvii-defaults", `{"final_after":"20s","start_after":"2s"}`, "--baidu-defaults", `{"complete_after":"15s","media":"process_video"}`,
		// Baidu pages: the signed landing URLs ingest answers at registration,
		// set per verification by the workload.
		"--megvii-notify-url", ingestURL+"/v1/callbacks/megvii"); err != nil {
		return err
	}
	kb := "--kafka-brokers=" + s.broker
	var key [32]byte
	_, _ = crand.Read(key[:])
	s.landingKey = hex.EncodeToString(key[:])
	if err := s.spawn("ingest", kb, "--listen", s.addr("ingest"), "--metrics-addr", s.addr("ingest-metrics"), "--public-url", ingestURL,
		"--megvii-base-url", "http://"+s.addr("megvii"), "--baidu-base-url", "http://"+s.addr("baidu"), "--baidu-h5-url", "http://"+s.addr("baidu")+vendorsim.BaiduH5Path); err != nil {
		return err
	}
	names := []string{"ingest"}
	for i := 1; i <= s.o.replicas; i++ {
		h, a := "harvester", "archiver"
		if i > 1 {
			h, a = fmt.Sprintf("harvester-%d", i), fmt.Sprintf("archiver-%d", i)
		}
		names = append(names, h, a)
		if err := s.spawnAs(h, "harvester", append([]string{kb, "--metrics-addr", s.addr(h + "-metrics"),
			"--megvii-base-url", "http://" + s.addr("megvii"), "--baidu-base-url", "http://" + s.addr("baidu"),
			"--megvii-retention", "3m", "--megvii-last-chance", "40s", "--baidu-token-window", "1m", "--baidu-retention", "10m",
			"--baidu-media-retention", "5m", "--baidu-poll-delay", "10s", "--megvii-concurrency", megviiLimit, "--retry-min", "200ms", "--retry-max", "5s",
			"--session-timeout", "6s", "--rebalance-timeout", "10s"}, s.storeArgs()...)...); err != nil {
			return err
		}
		if err := s.spawnAs(a, "archiver", kb, "--metrics-addr", s.addr(a+"-metrics"), "--s3-endpoint", s.minio.Endpoint, "--s3-bucket", bucket,
			"--s3-create-bucket", "--spool-dir", filepath.Join(s.o.dataDir, "spool"), "--session-timeout", "6s", "--rebalance-timeout", "10s", "--shutdown-grace", "5s",
			// The simulator serves its media links over plain http on loopback.
			"--media-allowed-cidrs", "127.0.0.0/8,::1", "--media-allow-http"); err != nil {
			return err
		}
	}
	if err := s.startAuditor(kb); err != nil {
		return err
	}
	names = append(names, "auditor")
	for _, n := range names {
		if err := waitReady(ctx, "http://"+s.addr(n+"-metrics")+"/readyz", 90*time.Second); err != nil {
			return fmt.Errorf("%s not ready: %w (see %s)", n, err, filepath.Join(logs, n+".log"))
		}
	}
	fmt.Printf("  %-10s %s\n  %-10s %s (Megvii %s, Baidu %s)\n", "kafka", s.broker, "vendorsim", "http://"+s.addr("sim")+"/sim/stats", s.addr("megvii"), s.addr("baidu"))
	fmt.Printf("  %-10s %s (metrics http://%s/metrics)\n", "ingest", ingestURL, s.addr("ingest-metrics"))
	fmt.Printf("  %-10s metrics http://%s/metrics\n  %-10s metrics http://%s/metrics\n", "harvester", s.addr("harvester-metrics"), "archiver", s.addr("archiver-metrics"))
	fmt.Printf("  %-10s http://%s (audit page; log in with token %s, or %s to see identities unmasked)\n", "auditor", s.addr("auditor"), s.auditorTokens[0], s.auditorTokens[1])
	return nil
}

// startAuditor starts the audit page over the bucket with two bearer
// tokens generated for this run (viewer and identity) in the data
// directory's auditor-tokens.
func (s *stack) startAuditor(kb string) error {
	random := func() string {
		var b [24]byte
		_, _ = crand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	s.auditorKey, s.auditorTokens = random(), [3]string{random(), random(), random()}
	tokens := filepath.Join(s.o.dataDir, "auditor-tokens")
	body := "# token role name: generated by devstack for this run\n" + s.auditorTokens[0] + " viewer dev viewer\n" + s.auditorTokens[1] + " identity dev identity\n" +
		s.auditorTokens[2] + " viewer " + checkViewer + "\n"
	if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
		return err
	}
	return s.spawn("auditor", kb, "--listen", s.addr("auditor"), "--metrics-addr", s.addr("auditor-metrics"), "--s3-endpoint", s.minio.Endpoint,
		"--s3-bucket", bucket, "--tokens-file", tokens, "--cookie-secure=false")
}

func (s *stack) spawn(name string, args ...string) error { return s.spawnAs(name, name, args...) }

// spawnAs starts binary as the process called name (replicas share a binary).
func (s *stack) spawnAs(name, binary string, args ...string) error {
	path := filepath.Join(s.o.bin, binary)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s not built (run make build): %w", path, err)
	}
	logf, err := os.Create(filepath.Join(s.o.dataDir, "logs", name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), devEnv...)
	if binary == "ingest" {
		cmd.Env = append(cmd.Env, "FACEHARVEST_LANDING_KEY="+s.landingKey)
	}
	if binary == "auditor" {
		cmd.Env = append(cmd.Env, "FACEHARVEST_AUDITOR_SESSION_KEY="+s.auditorKey)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &proc{name: name, binary: binary, args: args, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	for i, q := range s.procs {
		if q.name == name {
			s.procs[i] = p
			return nil
		}
	}
	s.procs = append(s.procs, p)
	return nil
}

// restart stops a component with sig (SIGKILL: at once; SIGTERM: as
// gracefully as it can within 15 s) and starts it again with the same
// arguments; the broker comes back from its data directory.
func (s *stack) restart(name string, sig syscall.Signal) error {
	for _, p := range s.procs {
		if p.name == name {
			_ = syscall.Kill(-p.cmd.Process.Pid, sig)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
			how := "killed (SIGKILL)"
			if sig != syscall.SIGKILL {
				how = "stopped (" + sig.String() + ")"
			}
			fmt.Printf("  chaos: %s %s and restarted\n", name, how)
			// Keep the previous log: the restart writes a new file.
			_ = os.Rename(filepath.Join(s.o.dataDir, "logs", name+".log"), filepath.Join(s.o.dataDir, "logs", name+".before-restart.log"))
			return s.spawnAs(name, p.binary, p.args...)
		}
	}
	return fmt.Errorf("no process %s", name)
}

// waitGroupStable waits until the consumer group is Stable with members
// members, at most within.
func (s *stack) waitGroupStable(ctx context.Context, group string, members int, within time.Duration) error {
	cl := bus.Plain(s.broker)
	err := waitFor(ctx, within, 200*time.Millisecond, func(ctx context.Context) error {
		state, n, err := bus.GroupState(ctx, cl, group)
		if err != nil {
			return err
		}
		if state != "Stable" || n != members {
			return fmt.Errorf("%s with %d members", state, n)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("group %s not stable with %d members: %w", group, members, err)
	}
	return nil
}

// storeOutage stops the object store for at least d, and longer (up to 30 s)
// until an archiver has met the outage, then starts it again where it was.
func (s *stack) storeOutage(ctx context.Context, d time.Duration) error {
	s.minio.Stop()
	fmt.Printf("  chaos: object store down for at least %s\n", d)
	time.Sleep(d)
	// Past 30 s the store comes back anyway.
	_ = waitFor(ctx, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		if s.storeRetries(ctx) == 0 {
			return errors.New("no archiver has retried the store yet")
		}
		return nil
	})
	m, err := devs3.StartOn(s.minioBin, s.minio.DataDir, s.minio.User, s.minio.Password, s.minio.Addr())
	if err != nil {
		return err
	}
	s.minio = m
	fmt.Println("  chaos: object store back")
	return nil
}

// stopAll stops the processes in reverse order: SIGTERM, then SIGKILL after
// a grace period.
func (s *stack) stopAll() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	if s.minio != nil {
		s.minio.Stop()
	}
}

// waitReady waits until url answers 200, at most within.
func waitReady(ctx context.Context, url string, within time.Duration) error {
	return waitFor(ctx, within, 200*time.Millisecond, func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		return nil
	})
}

// waitFor tries fn every interval (pkg/retry) until it succeeds, ctx ends
// (ctx's error), or within has passed (fn's last error).
func waitFor(ctx context.Context, within, every time.Duration, fn func(ctx context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	err := retry.Do(wctx, retry.Policy{Backoff: retry.Backoff{Min: every, Max: every}}, func(int) error {
		last = fn(wctx)
		return last
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("not within %s: %w", within, last)
}

func postJSON(ctx context.Context, url, bearer string, in, out any) error {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

type expected struct {
	outcome  string
	issuedAt time.Time
	callback bool // the simulator sends a Megvii callback
}

type summary struct {
	want        map[string]expected // by record ce_id
	got         map[string]contract.Record
	raw         map[string][]byte // each record's first value, to compare re-publications with
	dups        int
	mismatched  []string
	elapsed     time.Duration
	objects     int // referenced by records
	present     int // of those, found in the store
	servedTwice int // Megvii answers served twice (a spent call repeated)
	// storeRetries is what the archivers retried while the store was failing.
	storeRetries float64
	// abuseTarget is a Megvii verification whose callback is replayed twice
	// and forged once after its record arrived; abuse says what ingest did.
	abuseTarget string
	abuse       []string
}

func (s summary) ok() bool {
	return len(s.got) == len(s.want) && len(s.mismatched) == 0 && s.present == s.objects && s.servedTwice == 0
}

// abuse sends ingest, after the target's record arrived, a replayed callback
// twice (acknowledged both times with the same ce_id), a forged one (401)
// and an unsigned Baidu landing (401); none may produce another record.
func (s *stack) abuse(ctx context.Context, sum *summary) error {
	data := fmt.Sprintf(`{"status":"OK","biz_info":{"biz_id":%q}}`, sum.abuseTarget)
	post := func(sign string) (int, string, error) {
		body := megvii.Callback{Data: data, Sign: sign}.EncodeForm()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr("ingest")+"/v1/callbacks/megvii", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var ack struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&ack)
		return resp.StatusCode, ack.ID, nil
	}
	c1, id1, err := post(megvii.Sign(devMegviiSecret, data))
	if err != nil {
		return err
	}
	c2, id2, err := post(megvii.Sign(devMegviiSecret, data))
	if err != nil {
		return err
	}
	c3, _, err := post(strings.Repeat("0", 40))
	if err != nil {
		return err
	}
	// A landing for a token nobody registered, without a signature.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr("ingest")+"/v1/callbacks/baidu/success?verify_token=forged0000000000000000000", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	c4 := resp.StatusCode
	sum.abuse = []string{fmt.Sprintf("replayed callback: %d then %d, same ce_id %v", c1, c2, id1 != "" && id1 == id2), fmt.Sprintf("forged callback: %d", c3), fmt.Sprintf("forged landing: %d", c4)}
	if c1 != 200 || c2 != 200 || id1 == "" || id1 != id2 || c3 != http.StatusUnauthorized || c4 != http.StatusUnauthorized {
		sum.mismatched = append(sum.mismatched, "ingest: "+strings.Join(sum.abuse, "; "))
	}
	fmt.Println("  abuse:", strings.Join(sum.abuse, "; "))
	return nil
}

// verify checks the laws the summary reports: every object a record
// references exists in the store, and no Megvii answer was served twice.
func (s *stack) verify(ctx context.Context, sum *summary) error {
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: s.minio.Endpoint, Bucket: bucket, PathStyle: true,
		AccessKey: config.NewSecret(s.minio.User), SecretKey: config.NewSecret(s.minio.Password)})
	if err != nil {
		return err
	}
	for _, r := range sum.got {
		refs := []contract.ObjectRef{}
		if r.Evidence != nil {
			refs = append(refs, *r.Evidence)
		}
		for _, m := range r.Media {
			if m.Status == contract.MediaStored {
				refs = append(refs, m.ObjectRef)
			}
		}
		for _, ref := range refs {
			sum.objects++
			if a, err := b.Attributes(ctx, ref.Key); err == nil && a.Size == ref.Size {
				sum.present++
			} else {
				sum.mismatched = append(sum.mismatched, fmt.Sprintf("%s:%s references %s, which the store lacks", r.Vendor, r.VerificationID, ref.Key))
			}
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr("sim")+"/sim/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st struct {
		Twice int `json:"megvii_served_twice"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	sum.servedTwice = st.Twice
	sum.storeRetries = s.storeRetries(ctx)
	return nil
}

// storeRetries sums the archivers' store retries (since they last started).
func (s *stack) storeRetries(ctx context.Context) float64 {
	n := 0.0
	for name, port := range s.ports {
		if strings.HasPrefix(name, "archiver") {
			n += scrape(ctx, "http://127.0.0.1:"+strconv.Itoa(port)+"/metrics", "faceharvest_archiver_store_retries_total")
		}
	}
	return n
}

// jsonDiff names the top-level fields in which two JSON objects differ, with
// both values (shortened).
func jsonDiff(a, b []byte) string {
	var ma, mb map[string]json.RawMessage
	_ = json.Unmarshal(a, &ma)
	_ = json.Unmarshal(b, &mb)
	var out []string
	for k, va := range ma {
		if vb := mb[k]; !bytes.Equal(va, vb) {
			out = append(out, fmt.Sprintf("%s: %.300s != %.300s", k, va, vb))
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k+" only in the second")
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// scrape sums a metric's samples on a /metrics page (0 when unreachable).
func scrape(ctx context.Context, url, metric string) float64 {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, l := range strings.Split(string(b), "\n") {
		if name, v, ok := strings.Cut(l, " "); ok && (name == metric || strings.HasPrefix(name, metric+"{")) {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			total += f
		}
	}
	return total
}

func (s *stack) workload(ctx context.Context) (summary, error) {
	sum := summary{want: map[string]expected{}, got: map[string]contract.Record{}, raw: map[string][]byte{}}
	sim := "http://" + s.addr("sim")
	tokens := "http://" + s.addr("ingest") + "/v1/tokens"
	start := time.Now()
	type reg struct {
		Vendor         string     `json:"vendor"`
		VerificationID string     `json:"verification_id"`
		IssuedAt       *time.Time `json:"issued_at,omitempty"`
		BizNo          string     `json:"biz_no,omitempty"`
	}
	var regs []reg
	// Half of the registered verifications with the simulator's default
	// course are issued through ingest (POST /v1/{vendor}/tokens), which
	// registers them in the same request; the rest are created at the
	// vendor and registered with POST /v1/tokens, as a customer that issues
	// its own tokens does.
	issued := issuedCount{}
	megviiIssued := func(i int) bool {
		return i < s.o.megvii && i >= s.o.megviiUnregistered && i%2 == 0 && i != min(s.o.megviiUnregistered, s.o.megvii-1)
	}
	for i := range s.o.megvii {
		if !megviiIssued(i) {
			continue
		}
		a, err := s.issueMegvii(ctx, i, &issued)
		if err != nil {
			return sum, err
		}
		sum.want[contract.RecordID(contract.Megvii, a.BizID)] = expected{contract.OutcomeHarvested, time.Now(), true}
	}
	for i := range s.o.megvii + s.o.megviiNoCB + s.o.megviiEx {
		if megviiIssued(i) {
			continue // issued above
		}
		spec := map[string]any{"biz_no": fmt.Sprintf("loan-m%03d", i), "final_after": "20s", "start_after": "2s"}
		if i%3 == 1 {
			spec["procedure"] = "selfie" // two selfies and the ID card: all come with return_image=4
		}
		want := contract.OutcomeHarvested
		if i >= s.o.megvii {
			spec["no_callback"] = true
		}
		var c struct {
			BizID   string    `json:"biz_id"`
			Created time.Time `json:"created"`
		}
		if err := postJSON(ctx, sim+"/sim/megvii/verifications", "", spec, &c); err != nil {
			return sum, err
		}
		issued := c.Created
		if i >= s.o.megvii+s.o.megviiNoCB {
			issued = time.Now().Add(-4 * time.Minute) // registered after its 3-minute window closed
			want = contract.OutcomeExpired
		}
		if i >= s.o.megviiUnregistered || i >= s.o.megvii {
			regs = append(regs, reg{"megvii", c.BizID, &issued, spec["biz_no"].(string)})
		}
		if i == min(s.o.megviiUnregistered, s.o.megvii-1) {
			sum.abuseTarget = c.BizID
		}
		sum.want[contract.RecordID(contract.Megvii, c.BizID)] = expected{want, issued, i < s.o.megvii}
	}
	for i := range s.o.baidu + s.o.baiduNever {
		if baiduIssued(i, s.o.baidu) {
			vt, err := s.issueBaidu(ctx, i, &issued)
			if err != nil {
				return sum, err
			}
			sum.want[contract.RecordID(contract.Baidu, vt)] = expected{outcome: contract.OutcomeHarvested, issuedAt: time.Now()}
			continue
		}
		// Most accounts record the flow (media/query answers a video); some
		// do not (001: recording is off by default); some users fail once
		// and retry on the same token (001: URL stays valid on failure).
		spec := map[string]any{"complete_after": "15s", "media": "process_video"}
		if i%4 == 3 {
			spec["media"] = "none"
		}
		if i%5 == 1 {
			spec["attempts"], spec["attempt_gap"] = 2, "10s"
		}
		want := contract.OutcomeHarvested
		if i >= s.o.baidu {
			spec = map[string]any{"never_completes": true}
			// After its two hours an unused token answers "Token无效或者已过期",
			// as one used with a mismatched access_token does (001's FAQ):
			// whether a verification happened is unknown, so lost.
			want = contract.OutcomeLost
		}
		var c struct {
			VerifyToken string    `json:"verify_token"`
			Created     time.Time `json:"created"`
		}
		if err := postJSON(ctx, sim+"/sim/baidu/verifications", "", spec, &c); err != nil {
			return sum, err
		}
		created := c.Created
		regs = append(regs, reg{"baidu", c.VerifyToken, &created, fmt.Sprintf("loan-b%03d", i)})
		sum.want[contract.RecordID(contract.Baidu, c.VerifyToken)] = expected{outcome: want, issuedAt: created}
	}
	if s.o.large {
		var m struct {
			BizID   string    `json:"biz_id"`
			Created time.Time `json:"created"`
		}
		if err := postJSON(ctx, sim+"/sim/megvii/verifications", "", map[string]any{"biz_no": "loan-large", "final_after": "20s", "start_after": "2s",
			"image_bytes": 5 << 20}, &m); err != nil {
			return sum, err
		}
		var b struct {
			VerifyToken string    `json:"verify_token"`
			Created     time.Time `json:"created"`
		}
		if err := postJSON(ctx, sim+"/sim/baidu/verifications", "", map[string]any{"complete_after": "15s", "media": "process_video", "video_bytes": 200_000_000}, &b); err != nil {
			return sum, err
		}
		regs = append(regs, reg{"megvii", m.BizID, &m.Created, "loan-large"}, reg{"baidu", b.VerifyToken, &b.Created, "loan-large"})
		sum.want[contract.RecordID(contract.Megvii, m.BizID)] = expected{contract.OutcomeHarvested, m.Created, true}
		sum.want[contract.RecordID(contract.Baidu, b.VerifyToken)] = expected{outcome: contract.OutcomeHarvested, issuedAt: b.Created}
	}
	for i := 0; i < len(regs); i += 50 {
		var answer struct {
			Registered []struct {
				Key        string `json:"key"`
				SuccessURL string `json:"success_url"`
				FailureURL string `json:"failure_url"`
			} `json:"registered"`
		}
		if err := postJSON(ctx, tokens, ingestToken, map[string]any{"tokens": regs[i:min(i+50, len(regs))]}, &answer); err != nil {
			return sum, err
		}
		// The customer puts the signed landing URLs into Baidu's H5 URL as
		// the success and failure pages; the simulated browser lands there.
		for _, r := range answer.Registered {
			if vt, ok := strings.CutPrefix(r.Key, "baidu:"); ok {
				if err := postJSON(ctx, sim+"/sim/baidu/verifications/"+vt+"/pages", "", map[string]string{"success_url": r.SuccessURL, "failure_url": r.FailureURL}, nil); err != nil {
					return sum, err
				}
			}
		}
	}
	fmt.Printf("\nworkload: %d Megvii (%d never registered, callback only; %d without callback; %d registered too late) and %d Baidu (%d never completed) registered through ingest\n",
		s.o.megvii+s.o.megviiNoCB+s.o.megviiEx, min(s.o.megviiUnregistered, s.o.megvii), s.o.megviiNoCB, s.o.megviiEx, s.o.baidu+s.o.baiduNever, s.o.baiduNever)
	fmt.Printf("  issued through ingest: %d Megvii (POST /v1/megvii/tokens), %d Baidu (POST /v1/baidu/tokens, %d with idcard/submit); the rest with POST /v1/tokens; %d retries with the same Idempotency-Key answered the same token\n",
		issued.megvii, issued.baidu, issued.submitted, issued.replayed)
	fmt.Println("the simulator sends callbacks and redirects; the harvester calls the vendors (Megvii allows 4 calls in flight); waiting for records...")

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.broker), kgo.ConsumeTopics(contract.DefaultResultsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return sum, err
	}
	defer cl.Close()
	deadline := time.Now().Add(s.o.timeout)
	lastPrint := time.Time{}
	collect := func(r *kgo.Record) {
		var rec contract.Record
		if err := json.Unmarshal(r.Value, &rec); err != nil {
			sum.mismatched = append(sum.mismatched, fmt.Sprintf("a record at offset %d is not JSON: %v", r.Offset, err))
			return
		}
		id := contract.RecordID(rec.Vendor, rec.VerificationID)
		var ceID string
		for _, h := range r.Headers {
			if h.Key == contract.HeaderID {
				ceID = string(h.Value)
			}
		}
		if ceID != id {
			sum.mismatched = append(sum.mismatched, fmt.Sprintf("%s:%s has ce_id %q, want %q", rec.Vendor, rec.VerificationID, ceID, id))
		}
		// Law 2: a re-published record carries the same ce_id and the same content.
		if prev, ok := sum.raw[id]; ok {
			sum.dups++
			if !bytes.Equal(prev, r.Value) {
				sum.mismatched = append(sum.mismatched, fmt.Sprintf("%s:%s was published twice with different content (%s)", rec.Vendor, rec.VerificationID, jsonDiff(prev, r.Value)))
			}
		}
		sum.raw[id] = r.Value
		sum.got[id] = rec
	}
	// While callbacks, harvests and archiving are under way: each step when
	// its time has come and enough records exist (flows end 15-20 s after
	// registration, then records come in a burst).
	harvested := func() int {
		n := 0
		for _, r := range sum.got {
			if r.Outcome == contract.OutcomeHarvested {
				n++
			}
		}
		return n
	}
	// Kills come at random moments (in windows that keep their order) to
	// random replicas; the seed is printed so that a run can be replayed.
	seed := s.o.chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	if s.o.chaos {
		fmt.Printf("  chaos: seed %d (--chaos-seed replays it)\n", seed)
	}
	replica := func(name string) string {
		if i := 1 + rng.IntN(s.o.replicas); i > 1 {
			return fmt.Sprintf("%s-%d", name, i)
		}
		return name
	}
	within := func(from, to time.Duration) time.Duration { return from + time.Duration(rng.Int64N(int64(to-from))) }
	archiverVictim, harvesterVictim := replica("archiver"), replica("harvester")
	chaos := []struct {
		at        time.Duration
		harvested int
		do        func() error
	}{
		{within(3*time.Second, 9*time.Second), 0, func() error { return s.restart(archiverVictim, syscall.SIGKILL) }},
		{within(10*time.Second, 16*time.Second), 0, func() error {
			// Only once the harvesters' group is stable: the embedded broker
			// never expires a member killed between its JoinGroup and the
			// response (see docs/known-issues.md), which real Kafka does.
			if err := s.waitGroupStable(ctx, "faceharvest-harvester", s.o.replicas, time.Minute); err != nil {
				return err
			}
			return s.restart(harvesterVictim, syscall.SIGKILL)
		}},
		{within(17*time.Second, 22*time.Second), 0, func() error { return s.restart("ingest", syscall.SIGKILL) }},
		{0, 2, func() error { return s.killLedger(ctx) }},
		{0, 3, func() error { return s.restart("devkafka", syscall.SIGTERM) }},
		{0, 10, func() error { return s.storeOutage(ctx, 5*time.Second) }},
	}
	for len(sum.got) < len(sum.want) {
		if s.o.chaos && len(chaos) > 0 && time.Since(start) > chaos[0].at && harvested() >= chaos[0].harvested {
			if err := chaos[0].do(); err != nil {
				return sum, err
			}
			chaos = chaos[1:]
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		fs.EachRecord(collect)
		if time.Since(lastPrint) > 5*time.Second {
			lastPrint = time.Now()
			by := map[string]int{}
			for _, r := range sum.got {
				by[r.Outcome]++
			}
			fmt.Printf("  %5.0fs  records %3d/%d  %v\n", time.Since(start).Seconds(), len(sum.got), len(sum.want), by)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	sum.elapsed = time.Since(start)
	if _, ok := sum.got[contract.RecordID(contract.Megvii, sum.abuseTarget)]; ok {
		if err := s.abuse(ctx, &sum); err != nil {
			return sum, err
		}
		// Whatever the replay caused would show within seconds: a record
		// for an unknown id, or a re-published one that differs.
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			cl.PollFetches(pctx).EachRecord(collect)
			cancel()
		}
	}
	if err := s.verify(ctx, &sum); err != nil {
		return sum, err
	}
	for id, w := range sum.want {
		r, ok := sum.got[id]
		switch {
		case !ok:
		case r.Outcome != w.outcome:
			sum.mismatched = append(sum.mismatched, fmt.Sprintf("%s:%s is %s (%s), expected %s", r.Vendor, r.VerificationID, r.Outcome, r.Reason, w.outcome))
		case w.callback && r.WindowLeftSeconds < 100:
			// Harvested with its callback, about 160 s of the 180 s are left;
			// at the last chance (a lost callback), 40 s.
			sum.mismatched = append(sum.mismatched, fmt.Sprintf("%s:%s was harvested with %.0f s left: its acknowledged callback was lost", r.Vendor, r.VerificationID, r.WindowLeftSeconds))
		}
	}
	return sum, nil
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	sort.Float64s(xs)
	return xs[min(len(xs)-1, int(p*float64(len(xs))))]
}

func (s *stack) summary(sum summary) {
	by := map[string]int{}
	var window, e2e []float64
	stored, bytes, expired, refused, largest := 0, int64(0), 0, 0, int64(0)
	for _, r := range sum.got {
		by[string(r.Vendor)+" "+r.Outcome]++
		if r.Outcome == contract.OutcomeHarvested {
			window = append(window, r.WindowLeftSeconds)
		}
		if r.Times.CompletedAt != nil {
			e2e = append(e2e, r.Times.ArchivedAt.Sub(*r.Times.CompletedAt).Seconds())
		}
		for _, m := range r.Media {
			switch m.Status {
			case contract.MediaStored:
				stored++
				bytes += m.Size
				largest = max(largest, m.Size)
			case contract.MediaExpired:
				expired++
			case contract.MediaRefused:
				refused++
			}
		}
	}
	fmt.Printf("\n===== summary after %.0f s =====\n", sum.elapsed.Seconds())
	fmt.Printf("records: %d of %d verifications (duplicates re-published: %d)\n", len(sum.got), len(sum.want), sum.dups)
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %-24s %d\n", k, by[k])
	}
	fmt.Printf("window left at harvest (s): min %.0f  p50 %.0f  max %.0f (windows: Megvii 180 s, Baidu media 300 s)\n", pct(window, 0), pct(window, 0.5), pct(window, 1))
	fmt.Printf("completion -> record (s):   p50 %.1f  p99 %.1f over %d verifications with a completion\n", pct(e2e, 0.5), pct(e2e, 0.99), len(e2e))
	fmt.Printf("objects stored: %d media (%.1f MB), %d expired links, %d refused links, %d evidence documents; %d of %d referenced objects found in the store\n",
		stored, float64(bytes)/1e6, expired, refused, len(sum.got), sum.present, sum.objects)
	fmt.Printf("largest media object: %.1f MB\n", float64(largest)/1e6)
	fmt.Println(tallyImages(sum.got))
	fmt.Printf("Megvii answers served twice (a spent call repeated): %d; archiver store operations retried: %.0f\n", sum.servedTwice, sum.storeRetries)
	for _, m := range sum.mismatched {
		fmt.Println("  UNEXPECTED:", m)
	}
	if len(sum.got) < len(sum.want) {
		fmt.Printf("  MISSING: %d verifications have no record yet (see %s/logs)\n", len(sum.want)-len(sum.got), s.o.dataDir)
	}
	fmt.Println("\nwhere to look next:")
	fmt.Printf("  metrics:   http://%s/metrics  http://%s/metrics  http://%s/metrics\n", s.addr("ingest-metrics"), s.addr("harvester-metrics"), s.addr("archiver-metrics"))
	fmt.Printf("  records:   kcat -b %s -C -t %s -f '%%k %%h\\n%%s\\n\\n' -e\n", s.broker, contract.DefaultResultsTopic)
	fmt.Printf("  evidence:  AWS_ACCESS_KEY_ID=faceharvest AWS_SECRET_ACCESS_KEY=faceharvest-dev-password aws --endpoint-url %s s3 ls --recursive s3://%s/\n", s.minio.Endpoint, bucket)
	fmt.Printf("  simulator: curl -s http://%s/sim/stats\n", s.addr("sim"))
	fmt.Printf("  audit:     http://%s (token %s); curl -H 'Authorization: Bearer %s' http://%s/search?q=<biz_no>\n", s.addr("auditor"), s.auditorTokens[0], s.auditorTokens[0], s.addr("auditor"))
}
