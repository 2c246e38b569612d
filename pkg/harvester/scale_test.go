package harvester

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestTenThousandWithFaultsStormsAndRebalance: 10,000 verifications of both
// vendors (callbacks, missing callbacks, flows that never end, failures),
// a vendor that answers 5% internal errors, resets and HTML pages, a
// concurrency limit far below the harvesters' (a storm of
// CONCURRENCY_LIMIT_EXCEEDED and error 18), and two replicas of which one
// leaves mid-run. Afterwards: one terminal per verification, the expected
// outcome, no one-shot answer served twice, no deadline missed.
func TestTenThousandWithFaultsStormsAndRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	n := 10000
	if raceEnabled {
		n = 2000
	}
	if v, err := strconv.Atoi(os.Getenv("FACEHARVEST_SCALE_N")); err == nil && v > 0 {
		n = v
	}
	w := newWorld(t, func(c *vendorsim.Config) {
		c.MegviiLimits = vendorsim.Limits{Concurrency: 8}
		c.BaiduLimits = vendorsim.Limits{Concurrency: 8}
		c.Faults = vendorsim.FaultRates{Internal: 0.03, Reset: 0.01, HTML: 0.01}
		c.ImageBytes = 256
	})
	want := map[string]string{}
	wantLandings := 0
	var regs []ingest.Registration
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			spec := vendorsim.MegviiSpec{}
			switch i % 10 {
			case 2:
				spec.NoCallback = true
			case 4:
				spec.FinalStatus = "TIMEOUT"
			case 6:
				spec.FinalStatus = "PROCESSING"
			}
			c, err := w.sim.CreateMegvii(spec)
			if err != nil {
				t.Fatal(err)
			}
			regs = append(regs, ingest.Registration{Vendor: "megvii", VerificationID: c.BizID})
			want[contract.Key(contract.Megvii, c.BizID)] = contract.OutcomeHarvested
			if spec.FinalStatus == "PROCESSING" { // the last chance finds it unfinished
				want[contract.Key(contract.Megvii, c.BizID)] = contract.OutcomeNotVerified
			}
			continue
		}
		spec := vendorsim.BaiduSpec{}
		outcome := contract.OutcomeHarvested
		switch i % 10 {
		case 3:
			spec.Outcome = "failure"
		case 5:
			spec.NoRedirect = true
		case 7:
			spec.NeverCompletes = true
			// Polled only when its window closes, the unused token answers
			// "Token无效或者已过期", which 001's FAQ gives a mismatched
			// access_token too: whether a verification happened is unknown.
			outcome = contract.OutcomeLost
		}
		c, err := w.sim.CreateBaidu(spec)
		if err != nil {
			t.Fatal(err)
		}
		if !spec.NoRedirect && !spec.NeverCompletes {
			wantLandings++
		}
		regs = append(regs, ingest.Registration{Vendor: "baidu", VerificationID: c.VerifyToken})
		want[contract.Key(contract.Baidu, c.VerifyToken)] = outcome
	}
	for i := 0; i < len(regs); i += 1000 {
		w.register(regs[i:min(i+1000, len(regs))])
	}
	limits := map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 32}, contract.Baidu: {Concurrency: 32}}
	stopA, a := w.startHarvester(limits)
	stopB, b := w.startHarvester(limits)
	waitOwned := func(want int, engines ...*Engine) {
		deadline := time.Now().Add(3 * time.Minute)
		for {
			got := 0
			for _, e := range engines {
				got += e.Partitions()
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the group never settled: %d of %d partitions owned", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	w.waitLoaded(n, a.Engine(), b.Engine())
	w.advance(40*time.Second, a.Engine(), b.Engine())
	stopB() // one replica leaves mid-run: its partitions move to the other
	// The simulated clock stands still while the group rebalances, as real
	// time would barely move compared with the vendors' windows.
	waitOwned(3, a.Engine())
	w.advance(26*time.Hour, a.Engine())
	waitDrained(t, a.Engine())
	defer stopA()
	terms, responses := w.rawTerminals()
	wrong := 0
	for key, outcome := range want {
		ts := terms[key]
		if len(ts) == 0 {
			t.Errorf("%s: no terminal", key)
			continue
		}
		for _, x := range ts[1:] {
			if x.Outcome != ts[0].Outcome || !x.DecidedAt.Equal(ts[0].DecidedAt) {
				t.Errorf("%s: duplicate terminals differ", key)
			}
		}
		if ts[0].Outcome != outcome {
			wrong++
			if wrong < 10 {
				t.Errorf("%s: %s (%s), want %s", key, ts[0].Outcome, ts[0].Reason, outcome)
			}
		}
		for _, id := range ts[0].Responses {
			if !responses[id] {
				t.Errorf("%s: terminal names a response not in the topic", key)
			}
		}
	}
	// The browser landed on the signed URLs: each completed flow's landing
	// was accepted (published), none refused, so Baidu was harvested on
	// landings, not only by the poll after the token window.
	if published, refused := w.landings(); published < float64(wantLandings) || refused != 0 {
		t.Errorf("Baidu landings: %v published, %v refused; want %d published, none refused", published, refused, wantLandings)
	}
	st := w.sim.Stats()
	if st.MegviiServedTwice != 0 || st.MegviiDestroyedHits != 0 {
		t.Errorf("one-shot calls repeated: served twice %d, DATA_DESTROYED answers %d", st.MegviiServedTwice, st.MegviiDestroyedHits)
	}
	if st.MegviiServed != n/2 {
		t.Errorf("Megvii served %d of %d", st.MegviiServed, n/2)
	}
	t.Logf("%d verifications, %d with a terminal, %d wrong outcomes; get_result calls %d (served %d), Baidu calls %v",
		n, len(terms), wrong, st.MegviiCalls[megvii.EndpointGetResult], st.MegviiServed, st.BaiduCalls)
}
