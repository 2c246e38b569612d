package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devkafka"
	"github.com/faceharvest/faceharvest/pkg/ingest"
	"github.com/faceharvest/faceharvest/pkg/proctest"
	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestProcessIssuing runs the built binary against the embedded broker and
// the vendor simulator over HTTP: strangers cost no vendor call; issued
// tokens come with their H5 URLs; the simulated user ends on ingest's
// landings and then the customer's pages; after a restart, a retry with the
// same Idempotency-Key returns the same token without a vendor call.
func TestProcessIssuing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	b, err := devkafka.Start(devkafka.Config{Topics: []string{contract.DefaultEventsTopic, ingest.DefaultIdempotencyTopic}, Compacted: []string{ingest.DefaultIdempotencyTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clk := clock.NewSim(time.Now().UTC(), 0, nil)
	sim := vendorsim.New(vendorsim.Config{Clock: clk, MegviiAPIKey: "mk", MegviiAPISecret: secret, BaiduAPIKey: "bk", BaiduSecretKey: "bs"})
	ms := httptest.NewServer(sim.MegviiHandler())
	bs := httptest.NewServer(sim.BaiduHandler())
	defer ms.Close()
	defer bs.Close()
	bin := proctest.Build(t, t.TempDir(), "ingest")
	args := []string{"--megvii-base-url=" + ms.URL, "--baidu-base-url=" + bs.URL, "--baidu-h5-url=" + bs.URL + vendorsim.BaiduH5Path}
	envs := []string{"FACEHARVEST_KAFKA_BROKERS=" + b.Addr(), "FACEHARVEST_MEGVII_API_SECRET=" + secret, "FACEHARVEST_INGEST_TOKENS=" + token,
		"FACEHARVEST_MEGVII_API_KEY=mk", "FACEHARVEST_BAIDU_API_KEY=bk", "FACEHARVEST_BAIDU_SECRET_KEY=bs"}
	cmd, stderr, listen, metrics := startIngest(t, bin, args, envs...)
	waitHTTP(t, "http://"+metrics+"/readyz", 200)

	issue := func(route, auth, key string, body any) (int, map[string]any, string) {
		bb, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", "http://"+listen+route, bytes.NewReader(bb))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m, string(raw)
	}
	for _, auth := range []string{"", "not-the-token"} {
		if code, _, raw := issue("/v1/megvii/tokens", auth, "k", map[string]any{"biz_no": "x"}); code != 401 {
			t.Fatalf("stranger: %d %s", code, raw)
		}
	}
	if n := sim.APICalls("megvii", "get_token"); n != 0 {
		t.Fatalf("strangers caused %d get_token calls", n)
	}
	code, m, mraw := issue("/v1/megvii/tokens", token, "order-1", map[string]any{"biz_no": "loan-1", "return_url": "http://127.0.0.1:9/kyc/done"})
	if code != 200 || !strings.HasPrefix(m["url"].(string), ms.URL+"/faceid/lite/do?token=") {
		t.Fatalf("megvii: %d %s", code, mraw)
	}
	code, bm, braw := issue("/v1/baidu/tokens", token, "order-2", map[string]any{"plan_id": "5", "id_name": "张三", "id_no": "500000199001013390",
		"success_url": "http://127.0.0.1:9/ok", "failure_url": "http://127.0.0.1:9/fail"})
	if code != 200 || strings.Contains(braw, "500000199001013390") {
		t.Fatalf("baidu: %d %s", code, braw)
	}
	// The user opens the H5 URL; the simulated vendor later sends the
	// browser to the success page, ingest's signed landing.
	resp, err := http.Get(bm["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	clk.Advance(5 * time.Minute)
	sim.DispatchDue(t.Context())
	mst, _ := sim.Megvii(m["biz_id"].(string))
	bst, _ := sim.Baidu(bm["verify_token"].(string))
	if !mst.CallbackDelivered || mst.ReturnOutcome != "delivered" || !bst.CallbackDelivered || bst.H5Opened != 1 {
		t.Fatalf("megvii %+v, baidu %+v", mst, bst)
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	cmd, stderr, listen, metrics = startIngest(t, bin, args, envs...)
	waitHTTP(t, "http://"+metrics+"/readyz", 200)
	code, _, again := issue("/v1/megvii/tokens", token, "order-1", map[string]any{"biz_no": "loan-1", "return_url": "http://127.0.0.1:9/kyc/done"})
	if code != 200 || again != mraw {
		t.Fatalf("retry after restart: %d %s, first %s", code, again, mraw)
	}
	if n := sim.APICalls("megvii", "get_token"); n != 1 {
		t.Fatalf("%d get_token calls", n)
	}
	resp, err = http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`faceharvest_ingest_idempotent_replays_total{vendor="megvii"} 1`, `faceharvest_ingest_tokens_issued_total{vendor="baidu"} 0`,
		`faceharvest_ingest_issue_vendor_errors_total{class="rate_limited",vendor="megvii"} 0`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
	}
	for _, leak := range []string{secret, token, "500000199001013390"} {
		if strings.Contains(stderr.String(), leak) {
			t.Fatalf("logs carry a secret or an ID number:\n%s", stderr.String())
		}
	}
}
