package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// benchTopic takes the broker-alone ceiling's writes.
const benchTopic = "faceharvest.bench"

// BenchReport is what --bench-rate measures, also written as JSON.
type BenchReport struct {
	OfferedPerSecond  float64 `json:"offered_verifications_per_second"`
	Verifications     int     `json:"verifications"`
	Records           int     `json:"records"`
	Lost              int     `json:"lost"`
	SustainedPerSec   float64 `json:"sustained_verifications_per_second"`
	LatencyP50Seconds float64 `json:"callback_to_record_p50_seconds"`
	LatencyP99Seconds float64 `json:"callback_to_record_p99_seconds"`
	StoreObjectsPerS  float64 `json:"store_alone_100kb_objects_per_second"`
	StoreCeilingPerS  float64 `json:"store_alone_ceiling_verifications_per_second"`
	BrokerMsgsPerS    float64 `json:"broker_alone_400kb_messages_per_second"`
	BrokerCeilingPerS float64 `json:"broker_alone_ceiling_verifications_per_second"`
	// The latency of a pipeline that keeps up: offered at a rate it sustains.
	SteadyOfferedPerSec float64 `json:"steady_offered_verifications_per_second,omitempty"`
	SteadyP50Seconds    float64 `json:"steady_callback_to_record_p50_seconds,omitempty"`
	SteadyP99Seconds    float64 `json:"steady_callback_to_record_p99_seconds,omitempty"`
	// Ladder is the steady rate offered at 1x, 2x and 4x: sustained
	// throughput must not fall as the offered load grows. Each phase has
	// its cost per verification: CPU by process (sampled from /proc), Kafka
	// bytes produced, object-store requests by operation.
	Ladder map[string]PhaseCost `json:"load_ladder,omitempty"`
	// AtRate is the cost at --bench-rate.
	AtRate PhaseCost `json:"at_offered_rate"`
}

// parallelFor runs fn from workers goroutines until d has passed and returns
// how many calls succeeded. A failed call is not counted; a busy store or
// broker may refuse one now and then (MinIO answers IncompleteBody when it
// could not read a body in time), so the measurement fails only when more
// than one call in a hundred does.
func parallelFor(workers int, d time.Duration, fn func(i int64) error) (int64, error) {
	var n, failed, next atomic.Int64
	var first atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := fn(next.Add(1)); err != nil {
					first.CompareAndSwap(nil, err)
					failed.Add(1)
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f*100 > n.Load()+f {
		err, _ := first.Load().(error)
		return 0, fmt.Errorf("%d of %d calls failed, the first: %w", f, n.Load()+f, err)
	}
	return n.Load(), nil
}

// ceilings measures the store and the broker alone, in this run, on this
// machine: what one verification costs them is three 100 KB objects and
// about 400 KB through the broker (the raw answer; events and records are
// small).
func (s *stack) ceilings(ctx context.Context, rep *BenchReport) error {
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: s.minio.Endpoint, Bucket: bucket, PathStyle: true,
		AccessKey: config.NewSecret(s.minio.User), SecretKey: config.NewSecret(s.minio.Password)})
	if err != nil {
		return err
	}
	img := make([]byte, 100_000)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	const d = 5 * time.Second
	n, err := parallelFor(16, d, func(i int64) error {
		return b.Put(ctx, fmt.Sprintf("bench-ceiling/%d", i), bytes.NewReader(img), int64(len(img)), "image/jpeg", nil)
	})
	if err != nil {
		return fmt.Errorf("store ceiling: %w", err)
	}
	rep.StoreObjectsPerS = float64(n) / d.Seconds()
	rep.StoreCeilingPerS = rep.StoreObjectsPerS / 3
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.broker), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchMaxBytes(16<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	msg := make([]byte, 400_000)
	copy(msg, img)
	n, err = parallelFor(16, d, func(i int64) error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: benchTopic, Key: []byte(fmt.Sprint(i)), Value: msg}).FirstErr()
	})
	if err != nil {
		return fmt.Errorf("broker ceiling: %w", err)
	}
	rep.BrokerMsgsPerS = float64(n) / d.Seconds()
	rep.BrokerCeilingPerS = rep.BrokerMsgsPerS
	return nil
}

// phase is what one offered rate gave.
type phase struct {
	verifications, records int
	sustained, p50, p99    float64
}

// bench measures the ceilings, then offers Megvii verifications (three 100
// KB images each, callback about a second after creation) at steadyRate (when
// positive: the latency of a pipeline that keeps up) and at rate (the most it
// sustains), waiting each time for every record.
func (s *stack) bench(ctx context.Context, rate, steadyRate float64, d time.Duration, out string) (BenchReport, error) {
	rep := BenchReport{OfferedPerSecond: rate, SteadyOfferedPerSec: steadyRate}
	fmt.Println("\nmeasuring the store and the broker alone (5 s each)...")
	if err := s.ceilings(ctx, &rep); err != nil {
		return rep, err
	}
	fmt.Printf("  store alone: %.0f objects of 100 KB/s (ceiling %.0f verifications/s); broker alone: %.0f messages of 400 KB/s\n",
		rep.StoreObjectsPerS, rep.StoreCeilingPerS, rep.BrokerMsgsPerS)
	if steadyRate > 0 {
		rep.Ladder = map[string]PhaseCost{}
		for _, x := range []float64{1, 2, 4} {
			p, pc, err := s.measured(ctx, x*steadyRate, d)
			if err != nil {
				return rep, err
			}
			rep.Verifications += p.verifications
			rep.Records += p.records
			rep.Ladder[fmt.Sprintf("%gx", x)] = pc
			if x == 1 {
				rep.SteadyP50Seconds, rep.SteadyP99Seconds = p.p50, p.p99
			}
		}
		fmt.Printf("load ladder: sustained %.1f, %.1f, %.1f verifications/s at %.0f, %.0f, %.0f offered\n", rep.Ladder["1x"].SustainedPerSecond,
			rep.Ladder["2x"].SustainedPerSecond, rep.Ladder["4x"].SustainedPerSecond, steadyRate, 2*steadyRate, 4*steadyRate)
	}
	p, pc, err := s.measured(ctx, rate, d)
	if err != nil {
		return rep, err
	}
	rep.AtRate = pc
	rep.Verifications += p.verifications
	rep.Records += p.records
	rep.Lost = rep.Verifications - rep.Records
	rep.SustainedPerSec, rep.LatencyP50Seconds, rep.LatencyP99Seconds = p.sustained, p.p50, p.p99
	fmt.Printf("pipeline: %d of %d verifications recorded (lost %d); sustained %.0f verifications/s (goal 200; store alone %.0f); callback -> record p99 %.2f s at %.0f/s offered",
		rep.Records, rep.Verifications, rep.Lost, rep.SustainedPerSec, rep.StoreCeilingPerS, rep.LatencyP99Seconds, rate)
	if steadyRate > 0 {
		fmt.Printf(", %.2f s at %.0f/s (goal < 2 s)", rep.SteadyP99Seconds, steadyRate)
	}
	fmt.Println()
	if out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// offer offers rate verifications per second for d, registering each through
// ingest, and waits for every record (at most two minutes past d).
func (s *stack) offer(ctx context.Context, rate float64, d time.Duration) (phase, error) {
	var ph phase
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.broker), kgo.ConsumeTopics(contract.DefaultResultsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		return ph, err
	}
	defer cl.Close()
	sim, tokens := "http://"+s.addr("sim"), "http://"+s.addr("ingest")+"/v1/tokens"
	want := map[string]bool{}
	var mu sync.Mutex
	// Offer in ticks of 100 ms: one control call creates the tick's share.
	fmt.Printf("offering %.0f Megvii verifications/s for %s (three 100 KB images each)...\n", rate, d)
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		owed := 0.0
		for time.Since(start) < d {
			<-t.C
			owed += rate / 10
			n := int(owed)
			if n == 0 {
				continue
			}
			owed -= float64(n)
			var created []struct {
				BizID   string    `json:"biz_id"`
				Created time.Time `json:"created"`
			}
			spec := map[string]any{"final_after": "1s", "start_after": "0s", "image_bytes": 100_000}
			if err := postJSON(ctx, fmt.Sprintf("%s/sim/megvii/verifications?count=%d", sim, n), "", spec, &created); err != nil {
				errc <- err
				return
			}
			regs := make([]map[string]any, 0, n)
			mu.Lock()
			for _, c := range created {
				want[contract.RecordID(contract.Megvii, c.BizID)] = true
				regs = append(regs, map[string]any{"vendor": "megvii", "verification_id": c.BizID, "issued_at": c.Created})
			}
			mu.Unlock()
			if err := postJSON(ctx, tokens, ingestToken, map[string]any{"tokens": regs}, nil); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := map[string]contract.Record{}
	var lat []float64
	var last time.Time
	offering := true
	for {
		if offering {
			select {
			case err := <-errc:
				if err != nil {
					return ph, err
				}
				offering = false
			default:
			}
		}
		mu.Lock()
		done := !offering && len(got) >= len(want)
		ph.verifications = len(want)
		mu.Unlock()
		if done || time.Since(start) > d+2*time.Minute {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ph, ctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			var rec contract.Record
			if json.Unmarshal(r.Value, &rec) != nil {
				return
			}
			id := contract.RecordID(rec.Vendor, rec.VerificationID)
			mu.Lock()
			defer mu.Unlock()
			if !want[id] {
				return
			}
			if _, dup := got[id]; !dup && rec.Times.CompletedAt != nil {
				lat = append(lat, rec.Times.ArchivedAt.Sub(*rec.Times.CompletedAt).Seconds())
			}
			got[id] = rec
			last = time.Now()
		})
	}
	ph.records = len(got)
	if !last.IsZero() {
		// From the first offer to the last record: the pipeline kept up only
		// if this is close to the offered rate.
		ph.sustained = float64(ph.records) / last.Sub(start).Seconds()
	}
	ph.p50, ph.p99 = pct(lat, 0.5), pct(lat, 0.99)
	fmt.Printf("  %d of %d verifications recorded (lost %d); sustained %.0f verifications/s of %.0f offered; callback -> record p50 %.2f s, p99 %.2f s\n",
		ph.records, ph.verifications, ph.verifications-ph.records, ph.sustained, rate, ph.p50, ph.p99)
	return ph, nil
}
