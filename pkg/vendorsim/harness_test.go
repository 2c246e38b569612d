package vendorsim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/megvii"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

const (
	mKey, mSecret = "megvii-key", "megvii-secret"
	bKey, bSecret = "baidu-ak", "baidu-sk"
)

// harness runs a simulator on real loopback TCP with a frozen clock.
type harness struct {
	sim                 *Sim
	clk                 *clock.Sim
	megviiURL, baiduURL string
	controlURL          string
	megvii              *megvii.Client
	baidu               *baidu.Client
	landing             *recorder // receives callbacks and redirects
}

// recorder is a callback receiver: it answers with the next queued status
// (200 when none) and records what it received.
type recorder struct {
	mu       sync.Mutex
	statuses []int
	reqs     []recorded
	srv      *httptest.Server
}

type recorded struct {
	Method, Path, Query, ContentType string
	Body                             []byte
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Get("Content-Type"), body})
	status := 200
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *recorder) received() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	land := &recorder{}
	land.srv = httptest.NewServer(land)
	t.Cleanup(land.srv.Close)
	clk := clock.NewSim(t0, 0, nil)
	cfg := Config{
		Clock: clk, Seed: 7,
		MegviiAPIKey: mKey, MegviiAPISecret: mSecret, BaiduAPIKey: bKey, BaiduSecretKey: bSecret,
		MegviiNotifyURL: land.srv.URL + "/v1/callbacks/megvii",
		BaiduSuccessURL: land.srv.URL + "/v1/callbacks/baidu/success",
		BaiduFailureURL: land.srv.URL + "/v1/callbacks/baidu/failure",
		ImageBytes:      4096, VideoBytes: 300 << 10, SlowPause: 20 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	sim := New(cfg)
	ms := httptest.NewServer(sim.MegviiHandler())
	bs := httptest.NewServer(sim.BaiduHandler())
	cs := httptest.NewServer(sim.ControlHandler())
	t.Cleanup(ms.Close)
	t.Cleanup(bs.Close)
	t.Cleanup(cs.Close)
	sim.SetBaiduPublicURL(bs.URL)
	mc, err := megvii.New(megvii.Config{BaseURL: ms.URL, APIKey: config.NewSecret(mKey), APISecret: config.NewSecret(mSecret)})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := baidu.New(baidu.Config{BaseURL: bs.URL, APIKey: config.NewSecret(bKey), SecretKey: config.NewSecret(bSecret), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{sim: sim, clk: clk, megviiURL: ms.URL, baiduURL: bs.URL, controlURL: cs.URL, megvii: mc, baidu: bc, landing: land}
}
