package harvester

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestMegviiReturnImageAllFirst: documents 000 and 002 say return_image=4
// returns all images (需要返回所有图像); 5 and 6 (the frontal and the side
// selfie) are valid only for procedure_type selfie. Every flow asks for 4
// first; only when that answer lacks images the flow produced (a vendor
// whose 4 leaves the selfies out) and the budget allows another call does a
// later call ask for each missing one.
func TestMegviiReturnImageAllFirst(t *testing.T) {
	cases := []struct {
		name       string
		procedure  string
		budget     int
		noSelfies  bool   // the vendor's 4 leaves the selfies out
		want       string // return_image of each call, in order
		wantImages int    // images in the answers
	}{
		{"selfie, one call", "selfie", 1, false, "4", 4},
		{"selfie, three calls", "selfie", 3, false, "4", 4},
		{"video, three calls", "video", 3, false, "4", 3},
		{"selfie, 4 without the selfies, three calls", "selfie", 3, true, "4,5,6", 4},
		{"selfie, 4 without the selfies, two calls", "selfie", 2, true, "4,5", 3},
		{"selfie, 4 without the selfies, one call", "selfie", 1, true, "4", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := clock.NewSim(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC), 0, nil)
			sim := vendorsim.New(vendorsim.Config{Clock: clk, Seed: 9, MegviiAPIKey: "mk", MegviiAPISecret: "ms", MegviiCallBudget: c.budget, ImageBytes: 256})
			ms := httptest.NewServer(sim.MegviiHandler())
			t.Cleanup(ms.Close)
			mc, err := megvii.New(megvii.Config{BaseURL: ms.URL, APIKey: config.NewSecret("mk"), APISecret: config.NewSecret("ms")})
			if err != nil {
				t.Fatal(err)
			}
			m, err := sim.CreateMegvii(vendorsim.MegviiSpec{Procedure: c.procedure, NoCallback: true, FinalAfter: vendorsim.Duration(time.Minute), AllWithoutSelfies: c.noSelfies})
			if err != nil {
				t.Fatal(err)
			}
			pol := schedule.Defaults()
			pol.MegviiCallBudget = c.budget
			store, raw := &memStore{}, &memRaw{}
			eng := NewEngine(engineConfig(func(c *EngineConfig) {
				c.Policy, c.Callers, c.Limits, c.Store, c.Raw, c.Now, c.Source = pol, map[contract.Vendor]Caller{contract.Megvii: MegviiCaller{Client: mc}}, map[contract.Vendor]VendorLimits{contract.Megvii: {Concurrency: 2}}, store, raw, clk.Now, "/test"
			}))
			ctx := stepped(t, eng)
			eng.AddPartition(0, nil)
			clk.Advance(2 * time.Minute)
			// The flow's signed callback (its data as the simulator would
			// sign it; the harvester reads status and procedure from it).
			data := `{"status":"OK","biz_info":{"biz_id":"` + m.BizID + `"},"liveness_result":{"result":"PASS","procedure_type":"` + c.procedure + `"}}`
			<-eng.Apply(0, contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: m.BizID, Status: "OK", Data: data, ReceivedAt: clk.Now()})
			settle(t, ctx, eng)
			if r := store.get("megvii:" + m.BizID); r == nil || r.ClosedAt == nil {
				t.Fatalf("not closed: %+v", r)
			}
			var asked []string
			images := 0
			raw.mu.Lock()
			for _, msg := range raw.msgs {
				if r, err := contract.ParseResponse(msg); err == nil && r.Endpoint == megvii.EndpointGetResult {
					asked = append(asked, r.Params["return_image"])
					if res, err := megvii.ParseResult(r.Body); err == nil {
						images += len(res.Images)
					}
				}
			}
			raw.mu.Unlock()
			if got := strings.Join(asked, ","); got != c.want {
				t.Fatalf("return_image asked %q, want %q", got, c.want)
			}
			if images != c.wantImages {
				t.Fatalf("%d images in the answers, want %d", images, c.wantImages)
			}
			if st, _ := sim.Megvii(m.BizID); st.Outcomes["DATA_DESTROYED"] != 0 {
				t.Fatalf("a call past the budget: %+v", st.Outcomes)
			}
		})
	}
}
