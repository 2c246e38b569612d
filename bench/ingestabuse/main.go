// Command ingestabuse tries a real ingest process from the outside as a
// stranger would, on loopback only, bounded in count and time:
//
//  1. slow connections: rounds of N connections that each send the headers
//     of a callback announcing Content-Length: 1048576, then hold without
//     sending the body, then close; ingest's peak resident memory (VmHWM and
//     the highest VmRSS sampled from /proc/<pid>/status) must stay under a
//     bound;
//  2. full bodies: rounds of N connections that each send a whole callback
//     form body (1 MiB, -body-bytes) with a forged sign (half announcing its
//     Content-Length, half chunked), all at once, and read the answer;
//  3. idle connections: N keep-alive connections that each send one
//     (forged) landing and then stay open and silent;
//  4. forged landings: Baidu landings without a signature, with a wrong one,
//     and HEADs; none may publish an event (counted on the topic itself).
//
// The peak RSS bound holds across all of them.
//
// It prints the figures and writes them as JSON; it exits non-zero when a
// bound is broken. -ingest-bin runs another build (an older one, to compare).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/devkafka"
)

const (
	topic      = "bench.abuse.events"
	landingKey = "bench-landing-key-0123456789abcdef0123"
)

// Result is what one run measured.
type Result struct {
	Binary            string         `json:"binary"`
	Connections       int            `json:"slow_connections"`
	Rounds            int            `json:"rounds"`
	HoldSeconds       float64        `json:"hold_seconds"`
	RSSStartMiB       float64        `json:"rss_start_mib"`
	RSSPeakMiB        float64        `json:"rss_peak_mib"` // VmHWM at the end
	RSSMaxSampledMiB  float64        `json:"rss_max_sampled_mib"`
	RoundPeakMiB      []float64      `json:"round_peak_rss_mib"`
	SlowAnswers       map[string]int `json:"slow_answers"` // status codes, or "none" when ingest closed the connection silently
	BodyConnections   int            `json:"full_body_connections"`
	BodyBytes         int            `json:"full_body_bytes"`
	BodyRounds        int            `json:"full_body_rounds"`
	BodyPeakMiB       []float64      `json:"full_body_round_peak_rss_mib"`
	BodyAnswers       map[string]int `json:"full_body_answers"`
	IdleConnections   int            `json:"idle_connections"`
	IdlePeakMiB       float64        `json:"idle_peak_rss_mib"`
	IdleAnswers       map[string]int `json:"idle_answers"` // the one request each sent, by status (or "none")
	BoundMiB          float64        `json:"rss_bound_mib"`
	Forged            int            `json:"forged_landings"`
	ForgedAnswers     map[string]int `json:"forged_answers"`
	EventsPublished   int            `json:"events_published_for_forged_tokens"`
	SignedLandingCode int            `json:"signed_landing_code"` // the control: a registration's signed URL lands
}

func main() {
	bin := flag.String("ingest-bin", "", "ingest binary to try (empty: build ./cmd/ingest into a temporary directory)")
	conns := flag.Int("connections", 500, "slow connections per round")
	rounds := flag.Int("rounds", 3, "rounds of slow connections")
	hold := flag.Duration("hold", 3*time.Second, "how long each round holds its connections (under ingest's --read-timeout)")
	forged := flag.Int("forged", 3000, "forged landings to send")
	bodies := flag.Int("body-connections", 128, "connections per round sending a whole 1 MiB forged callback body")
	bodyRounds := flag.Int("body-rounds", 3, "rounds of full bodies")
	bodySize := flag.Int("body-bytes", 1<<20, "size of each full body (ingest's --max-callback-bytes is 64 KiB: 60000 tries bodies it reads whole)")
	idle := flag.Int("idle", 4000, "idle keep-alive connections held at once")
	bound := flag.Float64("max-rss-mib", 64, "ingest's peak RSS must stay under this")
	out := flag.String("out", "bin/bench-ingestabuse.json", "where to write the JSON figures")
	flag.Parse()
	res, err := run(*bin, *conns, *rounds, *hold, *forged, *bound, *bodies, *bodyRounds, *bodySize, *idle)
	if res != nil {
		print(res)
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(*out, append(b, '\n'), 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench ingestabuse:", err)
		os.Exit(1)
	}
}

func run(bin string, conns, rounds int, hold time.Duration, forged int, bound float64, bodies, bodyRounds, bodySize, idle int) (*Result, error) {
	if bin == "" {
		dir, err := os.MkdirTemp("", "ingestabuse")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "ingest")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/ingest").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	b, err := devkafka.Start(devkafka.Config{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	listen, metrics := freeAddr(), freeAddr()
	// Everything through the environment, so that an older build that lacks
	// a flag still starts (an unknown variable is ignored, a flag is not).
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "FACEHARVEST_LISTEN="+listen, "FACEHARVEST_METRICS_ADDR="+metrics, "FACEHARVEST_KAFKA_BROKERS="+b.Addr(),
		"FACEHARVEST_EVENTS_TOPIC="+topic, "FACEHARVEST_PUBLIC_URL=http://"+listen, "FACEHARVEST_LANDING_KEY="+landingKey,
		"FACEHARVEST_MEGVII_API_SECRET=bench-megvii-secret", "FACEHARVEST_INGEST_TOKENS=bench-ingest-token-0123", "FACEHARVEST_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitReady("http://"+metrics+"/readyz", 30*time.Second); err != nil {
		return nil, err
	}
	res := &Result{Binary: bin, Connections: conns, Rounds: rounds, HoldSeconds: hold.Seconds(), BoundMiB: bound, Forged: forged,
		SlowAnswers: map[string]int{}, ForgedAnswers: map[string]int{}, BodyConnections: bodies, BodyBytes: bodySize, BodyRounds: bodyRounds, BodyAnswers: map[string]int{},
		IdleConnections: idle, IdleAnswers: map[string]int{}}
	pid := cmd.Process.Pid
	res.RSSStartMiB, _ = status(pid, "VmRSS")
	for range rounds {
		peak, err := slowRound(pid, listen, conns, hold, res.SlowAnswers)
		if err != nil {
			return res, err
		}
		res.RoundPeakMiB = append(res.RoundPeakMiB, peak)
		res.RSSMaxSampledMiB = max(res.RSSMaxSampledMiB, peak)
	}
	for range bodyRounds {
		peak := bodyRound(pid, listen, bodies, bodySize, res.BodyAnswers)
		res.BodyPeakMiB = append(res.BodyPeakMiB, peak)
		res.RSSMaxSampledMiB = max(res.RSSMaxSampledMiB, peak)
	}
	if idle > 0 {
		peak, err := idleConns(pid, listen, idle, hold, res.IdleAnswers)
		if err != nil {
			return res, err
		}
		res.IdlePeakMiB = peak
		res.RSSMaxSampledMiB = max(res.RSSMaxSampledMiB, peak)
	}
	res.RSSPeakMiB, _ = status(pid, "VmHWM")

	forgedLandings(listen, forged, res.ForgedAnswers)
	// The control: a registered token's signed URL lands (published once).
	res.SignedLandingCode = signedLanding(listen)
	if res.EventsPublished, err = countForged(b.Addr()); err != nil {
		return res, err
	}
	var errs []error
	if res.RSSPeakMiB >= bound {
		errs = append(errs, fmt.Errorf("peak RSS %.1f MiB, bound %.0f MiB", res.RSSPeakMiB, bound))
	}
	if res.EventsPublished != 0 {
		errs = append(errs, fmt.Errorf("%d forged landings were published", res.EventsPublished))
	}
	return res, errors.Join(errs...)
}

// slowRound opens n connections that send a callback's headers announcing
// 1 MiB and nothing more, holds them, samples ingest's RSS, and closes them.
// It returns the highest RSS sampled.
func slowRound(pid int, addr string, n int, hold time.Duration, answers map[string]int) (float64, error) {
	head := "POST /v1/callbacks/megvii HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n"
	cs := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("dial: %w", err)
		}
		cs = append(cs, c)
		if _, err := io.WriteString(c, head); err != nil {
			return 0, err
		}
	}
	peak := 0.0
	end := time.Now().Add(hold)
	for time.Now().Before(end) {
		v, _ := status(pid, "VmRSS")
		peak = max(peak, v)
		time.Sleep(50 * time.Millisecond)
	}
	// What each connection was answered by now: a refusal (503 when full),
	// or nothing while its handler still waits for the body.
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			var buf [16]byte
			k, _ := io.ReadFull(c, buf[:12])
			code := "none"
			if k == 12 && strings.HasPrefix(string(buf[:k]), "HTTP/1.1 ") {
				code = string(buf[9:12])
			}
			mu.Lock()
			answers[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return peak, nil
}

// sampler samples ingest's RSS every 20 ms until stop is closed, then
// sends the highest on the returned channel.
func sampler(pid int, stop <-chan struct{}) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		peak := 0.0
		for {
			v, _ := status(pid, "VmRSS")
			peak = max(peak, v)
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return out
}

// bodyRound sends n whole callback bodies of size bytes with a forged sign at once
// (even ones with Content-Length, odd ones chunked), each on its own
// connection, and reads each answer's status. It returns the highest RSS
// sampled meanwhile.
func bodyRound(pid int, addr string, n, size int, answers map[string]int) float64 {
	const chunk = 16 << 10
	body := []byte("sign=" + strings.Repeat("0", 40) + "&data=")
	body = append(body, strings.Repeat("x", size-len(body))...)
	stop := make(chan struct{})
	peak := sampler(pid, stop)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := "error"
			defer func() { mu.Lock(); answers[code]++; mu.Unlock() }()
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(60 * time.Second))
			<-start
			head := "POST /v1/callbacks/megvii HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
			if i%2 == 0 {
				head += "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n"
				if _, err := io.WriteString(c, head); err != nil {
					return
				}
				go func() { _, _ = c.Write(body) }()
			} else {
				head += "Transfer-Encoding: chunked\r\n\r\n"
				if _, err := io.WriteString(c, head); err != nil {
					return
				}
				go func() {
					for off := 0; off < size; off += chunk {
						part := body[off:min(off+chunk, size)]
						if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(part), part); err != nil {
							return
						}
					}
					_, _ = io.WriteString(c, "0\r\n\r\n")
				}()
			}
			var buf [12]byte
			if k, _ := io.ReadFull(c, buf[:]); k == 12 && strings.HasPrefix(string(buf[:]), "HTTP/1.1 ") {
				code = string(buf[9:12])
			} else {
				code = "none"
			}
		}()
	}
	close(start)
	wg.Wait()
	close(stop)
	return <-peak
}

// idleConns opens n keep-alive connections, each sending one forged landing
// and reading its answer, then holds them all open and silent for hold,
// sampling ingest's RSS; it returns the highest sampled.
func idleConns(pid int, addr string, n int, hold time.Duration, answers map[string]int) (float64, error) {
	stop := make(chan struct{})
	peak := sampler(pid, stop)
	cs := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			close(stop)
			<-peak
			return 0, fmt.Errorf("dial %d: %w", i, err)
		}
		cs = append(cs, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := "none"
			_ = c.SetDeadline(time.Now().Add(hold + 10*time.Second))
			req := "GET /v1/callbacks/baidu/success?verify_token=idle" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
			if _, err := io.WriteString(c, req); err == nil {
				var buf [12]byte
				if k, _ := io.ReadFull(c, buf[:]); k == 12 && strings.HasPrefix(string(buf[:]), "HTTP/1.1 ") {
					code = string(buf[9:12])
				}
			}
			mu.Lock()
			answers[code]++
			mu.Unlock()
		}()
	}
	time.Sleep(hold)
	close(stop)
	p := <-peak
	for _, c := range cs {
		c.Close()
	}
	wg.Wait()
	return p, nil
}

// forgedLandings sends n landings nobody signed, 32 at a time: a third
// without a signature, a third with a wrong one, a third as HEAD.
func forgedLandings(addr string, n int, answers map[string]int) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			u := "http://" + addr + "/v1/callbacks/baidu/success?verify_token=forged" + strconv.Itoa(i)
			method := http.MethodGet
			switch i % 3 {
			case 1:
				u += "&sig=" + strings.Repeat("A", 43)
			case 2:
				method = http.MethodHead
			}
			req, _ := http.NewRequest(method, u, nil)
			code := "error"
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = strconv.Itoa(resp.StatusCode)
			}
			mu.Lock()
			answers[method+" "+code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// signedLanding registers a Baidu token and lands on the success URL the
// answer gives; it returns the landing's status (0 when there was none).
func signedLanding(addr string) int {
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/tokens", strings.NewReader(`{"vendor":"baidu","verification_id":"bench-registered-token"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer bench-ingest-token-0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	var ans struct {
		Registered []struct {
			SuccessURL string `json:"success_url"`
		} `json:"registered"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if len(ans.Registered) != 1 || ans.Registered[0].SuccessURL == "" {
		return 0
	}
	resp, err = http.Get(ans.Registered[0].SuccessURL)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// countForged reads the topic from the start until two polls in a row
// found nothing (bounded to 20 s) and counts the events for forged tokens.
func countForged(broker string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	n, quiet := 0, 0
	for deadline := time.Now().Add(20 * time.Second); quiet < 2 && time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			quiet++
			continue
		}
		quiet = 0
		fs.EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Key), "baidu:forged") {
				n++
			}
		})
	}
	return n, nil
}

// status reads a "VmRSS:  1234 kB" line of /proc/<pid>/status, in MiB.
func status(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("ingest not ready at %s within %s", url, within)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

func print(r *Result) {
	fmt.Printf("ingest under abuse (%s)\n", r.Binary)
	fmt.Printf("  slow connections: %d x %d rounds, each holding %.0f s with Content-Length: 1048576 and no body\n", r.Connections, r.Rounds, r.HoldSeconds)
	fmt.Printf("  RSS: start %.1f MiB, per round %v MiB, peak (VmHWM) %.1f MiB, bound %.0f MiB\n", r.RSSStartMiB, fmtMiB(r.RoundPeakMiB), r.RSSPeakMiB, r.BoundMiB)
	fmt.Printf("  slow connections' answers by the end of their hold: %v\n", r.SlowAnswers)
	fmt.Printf("  full forged callback bodies of %d bytes: %d x %d rounds, peak RSS per round %v MiB, answers %v\n", r.BodyBytes, r.BodyConnections, r.BodyRounds, fmtMiB(r.BodyPeakMiB), r.BodyAnswers)
	fmt.Printf("  idle keep-alive connections: %d, peak RSS %.1f MiB, answers %v\n", r.IdleConnections, r.IdlePeakMiB, r.IdleAnswers)
	fmt.Printf("  forged landings: %d, answered %v; events published by them: %d (signed control landing: %d)\n", r.Forged, r.ForgedAnswers, r.EventsPublished, r.SignedLandingCode)
}

func fmtMiB(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return "[" + strings.Join(s, " ") + "]"
}
