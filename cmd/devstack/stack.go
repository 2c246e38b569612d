package main

// The stack's processes: their ports, starting, restarting and stopping
// them, and the small HTTP helpers the rest of devstack shares.

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/faceharvest/faceharvest/pkg/bus"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/retry"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

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
