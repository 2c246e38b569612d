package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func testJPEG(t testing.TB, seed int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = byte(i*seed + seed)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testPNG(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.White)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// loopbackClient sends every request, whatever its host, to srv: the
// documents' example links (bj.bcebos.com) are served on loopback.
func loopbackClient(srv *httptest.Server) *http.Client {
	addr := srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
}

// mediaServer serves: /v1/aa.mp4 (a 3 MB MP4, streamed), *.jpg (a JPEG),
// /expired/* (403 as an object store answers), /page/* (an HTML page with
// 200), /broken/* (500).
func mediaServer(t testing.TB) (*httptest.Server, *hitCounter) {
	hits := &hitCounter{n: map[string]int{}}
	jpg := testJPEG(t, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.add(r.URL.Path)
		switch {
		case strings.HasPrefix(r.URL.Path, "/expired/"):
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "<Error><Code>AccessDenied</Code></Error>")
		case strings.HasPrefix(r.URL.Path, "/page/"):
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<!DOCTYPE html><html><body>login</body></html>")
		case strings.HasPrefix(r.URL.Path, "/broken/"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, ".mp4"):
			w.Header().Set("Content-Type", "video/mp4")
			w.Write(mp4(3 << 20))
		case strings.HasSuffix(r.URL.Path, ".jpg"):
			w.Header().Set("Content-Type", "image/jpeg")
			w.Write(jpg)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

type hitCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *hitCounter) add(p string) {
	h.mu.Lock()
	h.n[p]++
	h.mu.Unlock()
}

func (h *hitCounter) get(p string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[p]
}

// mp4 is an ISO-BMFF header followed by n filler bytes.
func mp4(n int) []byte {
	b := append([]byte{0, 0, 0, 0x18, 'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0, 0, 2, 0, 'i', 's', 'o', 'm', 'm', 'p', '4', '1'}, make([]byte, n)...)
	for i := 24; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

func newTest(t testing.TB, store objstore.Bucket, hc *http.Client) *Archiver {
	cfg := DefaultConfig()
	cfg.Store, cfg.HTTP, cfg.SpoolDir, cfg.DownloadTries, cfg.RetryMin, cfg.RetryMax = store, hc, t.TempDir(), 2, time.Millisecond, 5*time.Millisecond
	cfg.Now = func() time.Time { return t0.Add(time.Hour) }
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func response(v contract.Vendor, id, endpoint string, body []byte) contract.Response {
	return contract.Response{Vendor: v, VerificationID: id, Endpoint: endpoint, HTTPStatus: 200, FetchedAt: t0, Deadline: t0.Add(20 * time.Hour),
		ContentType: "application/json", Body: body, Params: map[string]string{"biz_id": id}}
}

// archive runs responses and their terminal through a, as the runner does.
func archive(t testing.TB, a *Archiver, term contract.Terminal, rs ...contract.Response) contract.Record {
	t.Helper()
	ctx := context.Background()
	for _, r := range rs {
		id := contract.ResponseID(r.Vendor, r.VerificationID, r.Endpoint, r.Attempt)
		if _, err := a.ArchiveResponse(ctx, id, r); err != nil {
			t.Fatal(err)
		}
		term.Responses = append(term.Responses, id)
	}
	raw, _ := json.Marshal(term)
	rec, err := a.Finish(ctx, term, raw)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func terminal(v contract.Vendor, id, outcome string) contract.Terminal {
	return contract.Terminal{Vendor: v, VerificationID: id, Outcome: outcome, DecidedAt: t0.Add(time.Second), Deadline: t0.Add(20 * time.Hour), WindowLeftSeconds: 72000}
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The documents' examples, archived and normalized: every record validates
// against the published schema and carries what the example says.
func TestDocumentExamplesNormalize(t *testing.T) {
	schema := schematest.Compile(t)
	srv, _ := mediaServer(t)
	cases := []struct {
		name   string
		vendor contract.Vendor
		rs     []contract.Response
		check  func(t *testing.T, r contract.Record)
	}{
		{"megvii 000", contract.Megvii, []contract.Response{response(contract.Megvii, "m000", "get_result", vendordocs.MustExample("megvii_get_result_ok_000.json"))},
			func(t *testing.T, r contract.Record) {
				// The document's result is the placeholder "PASS/FAIL/TIMEOUT".
				if r.FlowStatus != "OK" || r.Liveness == nil || r.Liveness.Result != "unknown" || len(r.Liveness.Attacks) != 3 || len(r.FaceMatch) != 4 {
					t.Errorf("flow %q liveness %+v match %+v", r.FlowStatus, r.Liveness, r.FaceMatch)
				}
				if r.Identity == nil || !r.Identity.Masked || strings.Count(r.Identity.IDNumber, "*") < 5 {
					t.Errorf("identity %+v", r.Identity)
				}
				for _, m := range r.Media { // the document's images are "..." placeholders
					if m.Status != contract.MediaRejected || m.Reason == "" {
						t.Errorf("placeholder image %+v", m)
					}
				}
			}},
		{"megvii 002", contract.Megvii, []contract.Response{response(contract.Megvii, "m002", "get_result", vendordocs.MustExample("megvii_get_result_ok_002.json"))},
			func(t *testing.T, r contract.Record) {
				if r.Liveness == nil || r.Liveness.Procedure == "" {
					t.Errorf("liveness %+v", r.Liveness)
				}
			}},
		{"baidu getall+detail+media", contract.Baidu, []contract.Response{
			response(contract.Baidu, "b1", "result/getall", vendordocs.MustExample("baidu_result_getall.json")),
			response(contract.Baidu, "b1", "result/detail", vendordocs.MustExample("baidu_result_detail.json")),
			response(contract.Baidu, "b1", "result/media/query", vendordocs.MustExample("baidu_result_media_query.json")),
		}, func(t *testing.T, r contract.Record) {
			if len(r.Attempts) != 1 || !r.Attempts[0].Passed || r.Attempts[0].Score == nil || *r.Attempts[0].Score != 89.9 {
				t.Errorf("attempts %+v", r.Attempts)
			}
			if r.Billing == nil || r.Billing.VerifyChargeCount == nil || *r.Billing.VerifyChargeCount != 1 {
				t.Errorf("billing %+v", r.Billing)
			}
			if r.Identity == nil || r.Identity.Name != "张*" || r.Identity.IDNumber != "362********232X" || r.Passed == nil || !*r.Passed {
				t.Errorf("identity %+v passed %v", r.Identity, r.Passed)
			}
			kinds := map[string]string{}
			for _, m := range r.Media {
				kinds[m.Kind+"/"+m.Endpoint] = m.Status
			}
			want := map[string]string{"process_video/result/media/query": "stored", "video/result/media/query": "stored", "image/result/media/query": "stored",
				"face_image/result/getall": "rejected", "idcard_front/result/getall": "rejected", "idcard_back/result/getall": "rejected",
				"idcard_front/result/detail": "rejected", "idcard_back/result/detail": "rejected"}
			for k, s := range want {
				if kinds[k] != s {
					t.Errorf("media %s: %q, want %q (all: %v)", k, kinds[k], s, kinds)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newTest(t, objstore.NewMemory(), loopbackClient(srv))
			rec := archive(t, a, terminal(c.vendor, c.rs[0].VerificationID, contract.OutcomeHarvested), c.rs...)
			schematest.Validate(t, schema, mustJSON(t, rec))
			c.check(t, rec)
		})
	}
}

// Embedded images are decoded strictly and sniffed; good ones are stored
// once under their content key and replaced by references in the evidence;
// re-processing writes nothing and yields the same record.
func TestMegviiImagesAndReprocessing(t *testing.T) {
	schema := schematest.Compile(t)
	store := objstore.NewMemory()
	best, front := testJPEG(t, 1), testJPEG(t, 2)
	b64 := base64.StdEncoding.EncodeToString
	body := mustJSON(t, map[string]any{"request_id": "r", "time_used": 10, "status": "OK",
		"biz_info":        map[string]any{"biz_id": "m1", "biz_no": "loan-7"},
		"liveness_result": map[string]any{"result": "PASS", "procedure_type": "video"},
		"verify_result":   map[string]any{"result_idcard_photo": map[string]any{"confidence": 81.5, "thresholds": map[string]any{"1e-3": 62.2, "1e-4": 69.3}}},
		"idcard_info":     map[string]any{"idcard_number": "110101199001011234", "idcard_name": "王小明"},
		"images": map[string]any{
			"image_best":         "data:image/jpeg;base64," + b64(best),
			"image_idcard_front": "data: image/jpeg;base64," + b64(front),                  // the documents' spaced spelling
			"image_idcard_back":  "data:image/jpeg;base64," + b64(best)[:len(b64(best))-7], // truncated
			"image_selfie":       "data:image/jpeg;base64," + b64(testPNG(t)),              // a PNG declared as JPEG
			"image_selfie_side":  nil,                                                      // left out, as the documents do
		}})
	a := newTest(t, store, nil)
	rec := archive(t, a, terminal(contract.Megvii, "m1", contract.OutcomeHarvested), response(contract.Megvii, "m1", "get_result", body))
	schematest.Validate(t, schema, mustJSON(t, rec))
	got := map[string]contract.MediaRef{}
	for _, m := range rec.Media {
		got[m.Kind] = m
	}
	sum := sha256.Sum256(best)
	if m := got["image_best"]; m.Status != contract.MediaStored || m.SHA256 != hex.EncodeToString(sum[:]) || m.ContentType != "image/jpeg" ||
		m.Key != "megvii/2026/11/23/media/"+m.SHA256+".jpg" {
		t.Errorf("image_best %+v", m)
	}
	if got["idcard_front"].Status != contract.MediaStored {
		t.Errorf("spaced data URI: %+v", got["idcard_front"])
	}
	if m := got["idcard_back"]; m.Status != contract.MediaRejected || !strings.Contains(m.Reason, "base64") {
		t.Errorf("truncated: %+v", m)
	}
	if m := got["image_selfie"]; m.Status != contract.MediaRejected || !strings.Contains(m.Reason, "image/png") {
		t.Errorf("PNG as JPEG: %+v", m)
	}
	if rec.Liveness == nil || rec.Liveness.Result != "pass" || len(rec.FaceMatch) != 1 || rec.FaceMatch[0].Thresholds["1e-4"] != 69.3 {
		t.Errorf("liveness %+v match %+v", rec.Liveness, rec.FaceMatch)
	}
	if rec.Identity.Name != "王**" || rec.Identity.IDNumber != "110***********1234" || rec.BizNo != "loan-7" {
		t.Errorf("identity %+v biz_no %q", rec.Identity, rec.BizNo)
	}
	for _, m := range rec.Media {
		if m.Status == contract.MediaStored {
			rc, err := store.Get(context.Background(), m.Key)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != m.SHA256 {
				t.Errorf("%s: stored bytes differ", m.Key)
			}
		}
	}
	// The evidence document holds the full identity and references, no base64.
	rc, err := store.Get(context.Background(), rec.Evidence.Key)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := io.ReadAll(rc)
	if !strings.Contains(string(ev), `"image_selfie_side":null`) || !strings.Contains(string(ev), "110101199001011234") || !strings.Contains(string(ev), `"faceharvest_object"`) || strings.Contains(string(ev), b64(best)) {
		t.Errorf("evidence document: %s", ev)
	}
	if s := sha256.Sum256(ev); hex.EncodeToString(s[:]) != rec.Evidence.SHA256 {
		t.Error("evidence sha256")
	}
	before, _ := objstore.Keys(context.Background(), store, "")
	a2 := newTest(t, store, nil)
	a2.cfg.Now = func() time.Time { return t0.Add(48 * time.Hour) } // later: the record must not change
	rec2 := archive(t, a2, terminal(contract.Megvii, "m1", contract.OutcomeHarvested), response(contract.Megvii, "m1", "get_result", body))
	after, _ := objstore.Keys(context.Background(), store, "")
	if len(after) != len(before) {
		t.Errorf("re-processing wrote objects: %d then %d", len(before), len(after))
	}
	if !bytes.Equal(mustJSON(t, rec), mustJSON(t, rec2)) {
		t.Errorf("re-processing changed the record:\n%s\n%s", mustJSON(t, rec), mustJSON(t, rec2))
	}
}

// Media links: streamed to the store, expired links recorded as expired,
// HTML pages rejected, 5xx retried then failed; nothing blocks the record.
func TestBaiduMediaLinks(t *testing.T) {
	srv, hits := mediaServer(t)
	store := objstore.NewMemory()
	a := newTest(t, store, srv.Client())
	body := mustJSON(t, map[string]any{"success": true, "log_id": "1", "result": map[string]any{
		"processVideo": []string{srv.URL + "/v1/aa.mp4"},
		"video":        []string{srv.URL + "/expired/v.mp4"},
		"images":       []string{srv.URL + "/v1/a.jpg", srv.URL + "/page/login", srv.URL + "/broken/b.jpg", "not a link"}}})
	rec := archive(t, a, terminal(contract.Baidu, "b2", contract.OutcomeHarvested), response(contract.Baidu, "b2", "result/media/query", body))
	// Fields in name order: images, processVideo, video.
	want := []string{"stored", "rejected", "failed", "rejected", "stored", "expired"}
	if len(rec.Media) != len(want) {
		t.Fatalf("media %+v", rec.Media)
	}
	for i, m := range rec.Media {
		if m.Status != want[i] {
			t.Errorf("media %d (%s): %s %q, want %s", i, m.Kind, m.Status, m.Reason, want[i])
		}
	}
	if m := rec.Media[4]; m.Size != int64(len(mp4(3<<20))) || m.ContentType != "video/mp4" || !strings.HasSuffix(m.Key, ".mp4") {
		t.Errorf("video %+v", m)
	}
	if n := hits.get("/broken/b.jpg"); n != 2 {
		t.Errorf("a 500 was tried %d times, want 2", n)
	}
	if len(rec.Problems) != 4 {
		t.Errorf("problems %q", rec.Problems)
	}
	for _, p := range rec.Problems {
		if strings.Contains(p, srv.URL) {
			t.Errorf("a link leaked into the record: %s", p)
		}
	}
}

// Garbage bodies are kept verbatim as objects and stated in the record.
func TestGarbageBodies(t *testing.T) {
	schema := schematest.Compile(t)
	store := objstore.NewMemory()
	a := newTest(t, store, nil)
	html := response(contract.Megvii, "g1", "get_result", []byte("<html><body>502 Bad Gateway</body></html>"))
	html.HTTPStatus, html.ErrorClass = 502, "vendor_fault"
	cut := response(contract.Megvii, "g1", "get_result", []byte(`{"status":"OK","images":{"image_best":"data:image/jp`))
	cut.Attempt = 1
	rec := archive(t, a, terminal(contract.Megvii, "g1", contract.OutcomeHarvested), html, cut)
	schematest.Validate(t, schema, mustJSON(t, rec))
	if len(rec.Problems) < 2 || !strings.Contains(strings.Join(rec.Problems, "|"), "not JSON") {
		t.Errorf("problems %q", rec.Problems)
	}
	keys, _ := objstore.Keys(context.Background(), store, "megvii/2026/11/23/media/")
	if len(keys) != 2 {
		t.Errorf("verbatim bodies stored: %v", keys)
	}
	// A terminal listing a response that was never archived says so.
	term := terminal(contract.Baidu, "g2", contract.OutcomeHarvested)
	term.Responses = []string{"0123456789abcdef"}
	raw, _ := json.Marshal(term)
	rec, err := a.Finish(context.Background(), term, raw)
	if err != nil || len(rec.Problems) != 1 || !strings.Contains(rec.Problems[0], "not archived") {
		t.Fatalf("%v %q", err, rec.Problems)
	}
	schematest.Validate(t, schema, mustJSON(t, rec))
}

// Terminal outcomes without responses make small, valid records.
func TestOutcomesWithoutResponses(t *testing.T) {
	schema := schematest.Compile(t)
	a := newTest(t, objstore.NewMemory(), nil)
	for _, o := range []string{contract.OutcomeExpired, contract.OutcomeNotFound, contract.OutcomeNotVerified, contract.OutcomeLost, contract.OutcomeFailed} {
		term := terminal(contract.Baidu, "x-"+o, o)
		term.Reason = "because " + o
		rec := archive(t, a, term)
		schematest.Validate(t, schema, mustJSON(t, rec))
		if rec.Outcome != o || rec.Reason != term.Reason || rec.Evidence == nil {
			t.Errorf("%s: %+v", o, rec)
		}
	}
}

func TestMasking(t *testing.T) {
	for _, c := range []struct{ in, name, id string }{
		{"张三", "张*", ""}, {"王小明", "王**", ""}, {"A", "A*", ""},
		{"110101199001011234", "", "110***********1234"}, {"36213219923232X", "", "362********232X"}, {"12345", "", "*****"},
	} {
		if c.name != "" && MaskName(c.in) != c.name {
			t.Errorf("MaskName(%q) = %q", c.in, MaskName(c.in))
		}
		if c.id != "" && MaskIDNumber(c.in) != c.id {
			t.Errorf("MaskIDNumber(%q) = %q", c.in, MaskIDNumber(c.in))
		}
	}
	if safeName("1462259748,52b1") == "1462259748,52b1" || safeName("abc-1") != "abc-1" || safeName("a,b") == safeName("a;b") {
		t.Error("safeName")
	}
}

// A store that fails for a while delays archiving; nothing is skipped.
func TestStoreOutageIsRetried(t *testing.T) {
	flaky := &flakyStore{Bucket: objstore.NewMemory(), fail: 5}
	a := newTest(t, flaky, nil)
	body := mustJSON(t, map[string]any{"status": "OK", "biz_info": map[string]any{"biz_id": "f1"},
		"images": map[string]any{"image_best": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(testJPEG(t, 5))}})
	rec := archive(t, a, terminal(contract.Megvii, "f1", contract.OutcomeHarvested), response(contract.Megvii, "f1", "get_result", body))
	if rec.Media[0].Status != contract.MediaStored || flaky.failed != 5 {
		t.Fatalf("%+v after %d failures", rec.Media, flaky.failed)
	}
	for _, k := range []string{rec.Media[0].Key, rec.Evidence.Key} {
		if _, err := flaky.Bucket.Attributes(context.Background(), k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}

type flakyStore struct {
	objstore.Bucket
	fail, failed int
}

func (f *flakyStore) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	if f.failed < f.fail {
		f.failed++
		return fmt.Errorf("store unavailable")
	}
	return f.Bucket.Create(ctx, key, body, size, ct, meta, opts...)
}

// A harvester that crashed republishes its last answer and its terminal, but
// not the earlier answers of the same verification (a rate-limited try).
// Those were kept in memory only and consumed by the first terminal; the
// record published again must still be identical: it is rebuilt from the
// stored evidence document, in this process and in a restarted one.
func TestTerminalPublishedAgainAfterAnswersWereConsumed(t *testing.T) {
	store := objstore.NewMemory()
	limited := response(contract.Megvii, "dup-1", "get_result", []byte(`{"error_message":"CONCURRENCY_LIMIT_EXCEEDED","request_id":"r"}`))
	limited.HTTPStatus, limited.ErrorClass = 403, "rate_limited"
	ok := response(contract.Megvii, "dup-1", "get_result", mustJSON(t, map[string]any{"status": "OK", "biz_info": map[string]any{"biz_id": "dup-1"},
		"images": map[string]any{"image_best": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(testJPEG(t, 9))}}))
	ok.Attempt = 1
	term := terminal(contract.Megvii, "dup-1", contract.OutcomeHarvested)
	a := newTest(t, store, nil)
	first := archive(t, a, term, limited, ok)
	if len(first.Responses) != 2 || len(first.Problems) != 0 {
		t.Fatalf("first record: %+v %q", first.Responses, first.Problems)
	}
	again := func(a *Archiver) contract.Record {
		okID := contract.ResponseID(contract.Megvii, "dup-1", "get_result", 1)
		if _, err := a.ArchiveResponse(context.Background(), okID, ok); err != nil {
			t.Fatal(err)
		}
		tt := term
		tt.Responses = []string{contract.ResponseID(contract.Megvii, "dup-1", "get_result", 0), okID}
		raw, _ := json.Marshal(tt)
		rec, err := a.Finish(context.Background(), tt, raw)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	for name, arch := range map[string]*Archiver{"same process": a, "restarted": newTest(t, store, nil)} {
		if got := again(arch); !bytes.Equal(mustJSON(t, got), mustJSON(t, first)) {
			t.Errorf("%s: the record published again differs:\n%s\n%s", name, mustJSON(t, first), mustJSON(t, got))
		}
	}
}

// TestCorruptedWriteIsRefusedAndRetried: the archiver declares each
// content-addressed object's SHA-256, so a body damaged on its way is
// refused by the store (not stored under an address it does not match) and
// written again.
func TestCorruptedWriteIsRefusedAndRetried(t *testing.T) {
	store := &corruptingStore{Bucket: objstore.NewMemory(), corrupt: 2}
	a := newTest(t, store, nil)
	img := testJPEG(t, 6)
	body := mustJSON(t, map[string]any{"status": "OK", "biz_info": map[string]any{"biz_id": "c1"},
		"images": map[string]any{"image_best": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(img)}})
	rec := archive(t, a, terminal(contract.Megvii, "c1", contract.OutcomeHarvested), response(contract.Megvii, "c1", "get_result", body))
	if store.refused != 2 {
		t.Fatalf("the store refused %d damaged bodies, want 2", store.refused)
	}
	r, err := store.Bucket.Get(context.Background(), rec.Media[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, img) {
		t.Fatal("the stored image differs from the answer's")
	}
}

// corruptingStore flips a byte of the first corrupt bodies it is given.
type corruptingStore struct {
	objstore.Bucket
	corrupt, refused int
}

func (c *corruptingStore) Create(ctx context.Context, key string, body io.Reader, size int64, ct string, meta map[string]string, opts ...objstore.PutOption) error {
	if c.corrupt > 0 {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		c.corrupt--
		b[len(b)/2] ^= 0xFF
		err = c.Bucket.Create(ctx, key, bytes.NewReader(b), size, ct, meta, opts...)
		if errors.Is(err, objstore.ErrChecksum) {
			c.refused++
		}
		return err
	}
	return c.Bucket.Create(ctx, key, body, size, ct, meta, opts...)
}
