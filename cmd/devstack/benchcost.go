package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the unit of /proc/<pid>/stat's utime and stime (USER_HZ,
// 100 on Linux).
const clockTicks = 100

// cost is what the stack had spent at one moment: CPU seconds by process
// (replicas summed under their binary's name), bytes produced to Kafka by
// the components' writers, and object-store requests by operation (the
// harvester's and the archivers'). A phase's cost is the difference of two.
type cost struct {
	cpu        map[string]float64
	kafkaBytes float64
	storeOps   map[string]float64
}

func (c cost) minus(b cost) cost {
	out := cost{cpu: map[string]float64{}, storeOps: map[string]float64{}, kafkaBytes: c.kafkaBytes - b.kafkaBytes}
	for k, v := range c.cpu {
		out.cpu[k] = v - b.cpu[k]
	}
	for k, v := range c.storeOps {
		out.storeOps[k] = v - b.storeOps[k]
	}
	return out
}

// procCPU returns the CPU seconds (user and system) pid has used, from
// /proc/<pid>/stat; 0 when it cannot be read (the process ended).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64) // field 14, utime
	k, _ := strconv.ParseFloat(f[12], 64) // field 15, stime
	return (u + k) / clockTicks
}

var (
	kafkaBytesLine = regexp.MustCompile(`^faceharvest_\w+_kafka_bytes_total\{[^}]*\} (\S+)$`)
	storeOpsLine   = regexp.MustCompile(`^faceharvest_(?:harvester|archiver)_store_operations_total\{operation="(\w+)"\} (\S+)$`)
)

// sampleCost reads every process's CPU time and the components' metrics.
func (s *stack) sampleCost(ctx context.Context) (cost, error) {
	c := cost{cpu: map[string]float64{}, storeOps: map[string]float64{}}
	for _, p := range s.procs {
		c.cpu[p.binary] += procCPU(p.cmd.Process.Pid)
		if p.binary != "ingest" && p.binary != "harvester" && p.binary != "archiver" {
			continue
		}
		if err := s.scrape(ctx, "http://"+s.addr(p.name+"-metrics")+"/metrics", &c); err != nil {
			return c, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	if s.minio != nil {
		c.cpu["minio"] = procCPU(s.minio.Pid())
	}
	return c, nil
}

func (s *stack) scrape(ctx context.Context, url string, c *cost) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := kafkaBytesLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			c.kafkaBytes += v
		} else if m := storeOpsLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			c.storeOps[m[1]] += v
		}
	}
	return sc.Err()
}

// PhaseCost is a phase's cost per verification recorded.
type PhaseCost struct {
	OfferedPerSecond   float64            `json:"offered_verifications_per_second"`
	SustainedPerSecond float64            `json:"sustained_verifications_per_second"`
	Records            int                `json:"records"`
	P99Seconds         float64            `json:"callback_to_record_p99_seconds"`
	CPUMsPerVerif      map[string]float64 `json:"cpu_ms_per_verification"`
	PipelineCPUMs      float64            `json:"pipeline_cpu_ms_per_verification"` // ingest + harvester + archiver
	KafkaBytesPerVerif float64            `json:"kafka_bytes_per_verification"`
	StoreOpsPerVerif   map[string]float64 `json:"store_requests_per_verification"`
}

// perVerification divides a phase's cost by its records.
func perVerification(p phase, rate float64, c cost) PhaseCost {
	pc := PhaseCost{OfferedPerSecond: rate, SustainedPerSecond: p.sustained, Records: p.records, P99Seconds: p.p99,
		CPUMsPerVerif: map[string]float64{}, StoreOpsPerVerif: map[string]float64{}}
	if p.records == 0 {
		return pc
	}
	n := float64(p.records)
	for k, v := range c.cpu {
		pc.CPUMsPerVerif[k] = v * 1000 / n
	}
	pc.PipelineCPUMs = pc.CPUMsPerVerif["ingest"] + pc.CPUMsPerVerif["harvester"] + pc.CPUMsPerVerif["archiver"]
	pc.KafkaBytesPerVerif = c.kafkaBytes / n
	for k, v := range c.storeOps {
		pc.StoreOpsPerVerif[k] = v / n
	}
	return pc
}

// printCost prints a phase's cost per verification.
func printCost(pc PhaseCost) {
	names := make([]string, 0, len(pc.CPUMsPerVerif))
	for k := range pc.CPUMsPerVerif {
		names = append(names, k)
	}
	sort.Strings(names)
	var cpu []string
	for _, k := range names {
		cpu = append(cpu, fmt.Sprintf("%s %.1f", k, pc.CPUMsPerVerif[k]))
	}
	ops := make([]string, 0, len(pc.StoreOpsPerVerif))
	for k, v := range pc.StoreOpsPerVerif {
		if v > 0 {
			ops = append(ops, fmt.Sprintf("%s %.2f", k, v))
		}
	}
	sort.Strings(ops)
	fmt.Printf("  CPU ms per verification: %s (ingest + harvester + archiver %.1f)\n  Kafka bytes per verification: %.0f; store requests per verification: %s\n",
		strings.Join(cpu, ", "), pc.PipelineCPUMs, pc.KafkaBytesPerVerif, strings.Join(ops, ", "))
}

// measured offers rate for d like offer, and measures the phase's cost.
func (s *stack) measured(ctx context.Context, rate float64, d time.Duration) (phase, PhaseCost, error) {
	before, err := s.sampleCost(ctx)
	if err != nil {
		return phase{}, PhaseCost{}, err
	}
	p, err := s.offer(ctx, rate, d)
	if err != nil {
		return p, PhaseCost{}, err
	}
	after, err := s.sampleCost(ctx)
	if err != nil {
		return p, PhaseCost{}, err
	}
	pc := perVerification(p, rate, after.minus(before))
	printCost(pc)
	return p, pc, nil
}
