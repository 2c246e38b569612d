package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// workload carries out the plan (planWorkload), the chaos plan when
// --chaos, waits for the records, runs the abuse step, verifies the store
// and the simulator, and returns the summary.
func (s *stack) workload(ctx context.Context) (Summary, error) {
	start := time.Now()
	plan := planWorkload(s.o)
	var issued issuedCount
	want, regs, abuseTarget, err := s.create(ctx, plan, &issued)
	if err != nil {
		return Summary{}, err
	}
	if err := s.register(ctx, regs); err != nil {
		return Summary{}, err
	}
	s.printWorkload(issued)

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.broker), kgo.ConsumeTopics(contract.DefaultResultsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return Summary{}, err
	}
	defer cl.Close()
	c := newCollector(want)
	chaos := s.chaosPlan()
	if chaos != nil {
		fmt.Printf("  chaos: seed %d (--chaos-seed replays it)\n", chaos.Seed)
	}
	if err := s.await(ctx, cl, c, chaos, start); err != nil {
		return Summary{}, err
	}
	elapsed := time.Since(start)
	var abused *abuseResult
	if _, ok := c.got[contract.RecordID(contract.Megvii, abuseTarget)]; ok {
		a, err := s.abuse(ctx, abuseTarget)
		if err != nil {
			return Summary{}, err
		}
		abused = &a
		if !a.ok() {
			c.fail("ingest: %s", a)
		}
		fmt.Println("  abuse:", a)
		// Whatever the replay caused would show within seconds: a record
		// for an unknown id, or a re-published one that differs.
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			poll(ctx, cl, c)
		}
	}
	v, err := s.verify(ctx, c)
	if err != nil {
		return Summary{}, err
	}
	c.checkOutcomes()
	return buildSummary(plan, issued, c, v, chaos, abused, elapsed), nil
}

// registration is one entry of POST /v1/tokens.
type registration struct {
	Vendor         string     `json:"vendor"`
	VerificationID string     `json:"verification_id"`
	IssuedAt       *time.Time `json:"issued_at,omitempty"`
	BizNo          string     `json:"biz_no,omitempty"`
}

// create creates the plan's verifications in its order: what each record
// must say by ce_id, the registrations for POST /v1/tokens, and the abuse
// step's target.
func (s *stack) create(ctx context.Context, plan []planned, issued *issuedCount) (want map[string]expected, regs []registration, abuseTarget string, err error) {
	want = map[string]expected{}
	for _, p := range plan {
		id, at, err := s.createOne(ctx, p, issued)
		if err != nil {
			return nil, nil, "", err
		}
		if p.Entry == entryRegistered {
			regs = append(regs, registration{string(p.Vendor), id, &at, p.BizNo})
		}
		if p.Abuse {
			abuseTarget = id
		}
		want[contract.RecordID(p.Vendor, id)] = expected{outcome: p.Want, issuedAt: at, callback: p.callback()}
	}
	return want, regs, abuseTarget, nil
}

// createOne issues one verification through ingest, or creates it at the
// simulator with its course; it returns its id and when it was issued (four
// minutes ago for one registered late).
func (s *stack) createOne(ctx context.Context, p planned, issued *issuedCount) (string, time.Time, error) {
	switch {
	case p.Entry == entryIssued && p.Vendor == contract.Megvii:
		a, err := s.issueMegvii(ctx, p.Index, issued)
		return a.BizID, time.Now(), err
	case p.Entry == entryIssued:
		vt, err := s.issueBaidu(ctx, p.Index, issued)
		return vt, time.Now(), err
	}
	var c struct {
		BizID       string    `json:"biz_id"`
		VerifyToken string    `json:"verify_token"`
		Created     time.Time `json:"created"`
	}
	if err := postJSON(ctx, "http://"+s.addr("sim")+"/sim/"+string(p.Vendor)+"/verifications", "", p.Course, &c); err != nil {
		return "", time.Time{}, err
	}
	id, at := c.BizID, c.Created
	if p.Vendor == contract.Baidu {
		id = c.VerifyToken
	}
	if p.Late {
		at = time.Now().Add(-4 * time.Minute) // registered after its 3-minute window closed
	}
	return id, at, nil
}

// register registers regs with POST /v1/tokens, 50 at a time, and gives
// each Baidu verification the signed landing URLs ingest answered: the
// customer puts them into Baidu's H5 URL as the success and failure pages;
// the simulated browser lands there.
func (s *stack) register(ctx context.Context, regs []registration) error {
	for i := 0; i < len(regs); i += 50 {
		var answer struct {
			Registered []struct {
				Key        string `json:"key"`
				SuccessURL string `json:"success_url"`
				FailureURL string `json:"failure_url"`
			} `json:"registered"`
		}
		if err := postJSON(ctx, "http://"+s.addr("ingest")+"/v1/tokens", ingestToken, map[string]any{"tokens": regs[i:min(i+50, len(regs))]}, &answer); err != nil {
			return err
		}
		for _, r := range answer.Registered {
			if vt, ok := strings.CutPrefix(r.Key, "baidu:"); ok {
				if err := postJSON(ctx, "http://"+s.addr("sim")+"/sim/baidu/verifications/"+vt+"/pages", "", map[string]string{"success_url": r.SuccessURL, "failure_url": r.FailureURL}, nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (s *stack) printWorkload(issued issuedCount) {
	fmt.Printf("\nworkload: %d Megvii (%d never registered, callback only; %d without callback; %d registered too late) and %d Baidu (%d never completed) registered through ingest\n",
		s.o.megvii+s.o.megviiNoCB+s.o.megviiEx, min(s.o.megviiUnregistered, s.o.megvii), s.o.megviiNoCB, s.o.megviiEx, s.o.baidu+s.o.baiduNever, s.o.baiduNever)
	fmt.Printf("  issued through ingest: %d Megvii (POST /v1/megvii/tokens), %d Baidu (POST /v1/baidu/tokens, %d with idcard/submit); the rest with POST /v1/tokens; %d retries with the same Idempotency-Key answered the same token\n",
		issued.Megvii, issued.Baidu, issued.Submitted, issued.Replayed)
	fmt.Println("the simulator sends callbacks and redirects; the harvester calls the vendors (Megvii allows 4 calls in flight); waiting for records...")
}

// chaosRun is --chaos: its seed, the steps planned and those done.
type chaosRun struct {
	Seed  uint64      `json:"seed"`
	Steps []chaosStep `json:"-"`
	Done  []chaosStep `json:"done"`
}

// chaosPlan plans --chaos (nil without it) from --chaos-seed, or from the
// clock; the seed is printed so that a run can be replayed.
func (s *stack) chaosPlan() *chaosRun {
	if !s.o.chaos {
		return nil
	}
	seed := s.o.chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return &chaosRun{Seed: seed, Steps: planChaos(seed, s.o.replicas)}
}

// await feeds c the records until every planned verification has one or
// --timeout has passed, runs each chaos step when its time has come and
// enough records are harvested (flows end 15-20 s after registration, then
// records come in a burst), and prints progress every 5 s.
func (s *stack) await(ctx context.Context, cl *kgo.Client, c *collector, chaos *chaosRun, start time.Time) error {
	deadline := time.Now().Add(s.o.timeout)
	lastPrint := time.Time{}
	for !c.complete() {
		if chaos != nil && len(chaos.Done) < len(chaos.Steps) {
			if next := chaos.Steps[len(chaos.Done)]; next.due(time.Since(start), c.harvested()) {
				if err := s.runChaos(ctx, next); err != nil {
					return err
				}
				chaos.Done = append(chaos.Done, next)
			}
		}
		poll(ctx, cl, c)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(lastPrint) > 5*time.Second {
			lastPrint = time.Now()
			fmt.Printf("  %5.0fs  records %3d/%d  %v\n", time.Since(start).Seconds(), len(c.got), len(c.want), c.byOutcome())
		}
		if time.Now().After(deadline) {
			break
		}
	}
	return nil
}

// poll feeds c what faceid.results has for it within a second.
func poll(ctx context.Context, cl *kgo.Client, c *collector) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) {
		var ceID string
		for _, h := range r.Headers {
			if h.Key == contract.HeaderID {
				ceID = string(h.Value)
			}
		}
		c.add(r.Value, r.Offset, ceID)
	})
}

// abuseResult is what ingest answered the abuse step: a replayed callback
// twice, a forged one and an unsigned Baidu landing.
type abuseResult struct {
	Replayed       [2]int `json:"replayed"`   // both 200
	SameCEID       bool   `json:"same_ce_id"` // both acknowledged with the same ce_id
	ForgedCallback int    `json:"forged_callback"`
	ForgedLanding  int    `json:"forged_landing"`
}

func (a abuseResult) ok() bool {
	return a.Replayed == [2]int{200, 200} && a.SameCEID && a.ForgedCallback == http.StatusUnauthorized && a.ForgedLanding == http.StatusUnauthorized
}

func (a abuseResult) String() string {
	return fmt.Sprintf("replayed callback: %d then %d, same ce_id %v; forged callback: %d; forged landing: %d",
		a.Replayed[0], a.Replayed[1], a.SameCEID, a.ForgedCallback, a.ForgedLanding)
}

// abuse sends ingest, after the target's record arrived, a replayed callback
// twice (acknowledged both times with the same ce_id), a forged one (401)
// and an unsigned Baidu landing (401); none may produce another record.
func (s *stack) abuse(ctx context.Context, target string) (abuseResult, error) {
	var a abuseResult
	data := fmt.Sprintf(`{"status":"OK","biz_info":{"biz_id":%q}}`, target)
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
	var ids [2]string
	for i := range ids {
		var err error
		if a.Replayed[i], ids[i], err = post(megvii.Sign(devMegviiSecret, data)); err != nil {
			return a, err
		}
	}
	a.SameCEID = ids[0] != "" && ids[0] == ids[1]
	var err error
	if a.ForgedCallback, _, err = post(strings.Repeat("0", 40)); err != nil {
		return a, err
	}
	// A landing for a token nobody registered, without a signature.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr("ingest")+"/v1/callbacks/baidu/success?verify_token=forged0000000000000000000", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, err
	}
	resp.Body.Close()
	a.ForgedLanding = resp.StatusCode
	return a, nil
}

// verified is what verify found: the objects the records reference and how
// many of them the store has, the Megvii answers served twice, and the
// archivers' store retries.
type verified struct {
	objects, present int
	servedTwice      int
	storeRetries     float64
}

// verify checks the laws the summary reports: every object a record
// references exists in the store, and no Megvii answer was served twice.
func (s *stack) verify(ctx context.Context, c *collector) (verified, error) {
	var v verified
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: s.minio.Endpoint, Bucket: bucket, PathStyle: true,
		AccessKey: config.NewSecret(s.minio.User), SecretKey: config.NewSecret(s.minio.Password)})
	if err != nil {
		return v, err
	}
	for _, r := range c.got {
		for _, ref := range referenced(r) {
			v.objects++
			if a, err := b.Attributes(ctx, ref.Key); err == nil && a.Size == ref.Size {
				v.present++
			} else {
				c.fail("%s:%s references %s, which the store lacks", r.Vendor, r.VerificationID, ref.Key)
			}
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr("sim")+"/sim/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	var st struct {
		Twice int `json:"megvii_served_twice"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return v, err
	}
	v.servedTwice = st.Twice
	v.storeRetries = s.storeRetries(ctx)
	return v, nil
}

// referenced lists the objects a record references: its evidence document
// and its stored media.
func referenced(r contract.Record) []contract.ObjectRef {
	refs := []contract.ObjectRef{}
	if r.Evidence != nil {
		refs = append(refs, *r.Evidence)
	}
	for _, m := range r.Media {
		if m.Status == contract.MediaStored {
			refs = append(refs, m.ObjectRef)
		}
	}
	return refs
}
