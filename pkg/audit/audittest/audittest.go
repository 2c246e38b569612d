// Package audittest fills a bucket with verifications the way the
// archiver does, by running the real archiver over it: the fixtures of the
// tests of whatever reads the evidence store (the audit Finder, the
// operator command, the audit page). Development and tests only.
package audittest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/devs3"
	"github.com/faceharvest/faceharvest/pkg/devs3/devs3test"
	"github.com/faceharvest/faceharvest/pkg/ledger"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Names and ID numbers of the fixtures: what Identity must return
// unmasked, and what a record must never show.
const (
	MegviiName     = "王小明"
	MegviiIDNumber = "110101199003071234"
	BaiduName      = "张三"
	BaiduIDNumber  = "362132199203232X"
)

// JPEG is a small valid JPEG that differs by seed.
func JPEG(seed int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range img.Pix {
		img.Pix[i] = byte(i*seed + seed)
	}
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, nil) // to memory: cannot fail
	return b.Bytes()
}

// Verification is one verification to archive.
type Verification struct {
	Vendor contract.Vendor
	ID     string
	BizNo  string
	// DecidedAt is the terminal's decision; answers are fetched a minute
	// before it, the token issued ten minutes before.
	DecidedAt time.Time
	// Seed varies the images (their content addresses).
	Seed int
}

// Archive runs each verification's answers and terminal through the real
// archiver writing to b (as its Kafka runner does, without Kafka) and
// returns their records, masked as published. Megvii: a get_result answer
// with the best image and both ID-card sides, and the signed callback.
// Baidu: getall with two attempts, each with its face image and ID-card
// images (downloaded from a loopback server), and detail.
func Archive(t testing.TB, b objstore.Bucket, vs ...Verification) []contract.Record {
	t.Helper()
	recs, err := ArchiveErr(context.Background(), b, t.TempDir(), vs...)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// ArchiveErr is Archive for callers without a testing.TB; spool is the
// archiver's spool directory.
func ArchiveErr(ctx context.Context, b objstore.Bucket, spool string, vs ...Verification) ([]contract.Record, error) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var seed int
		if _, err := fmt.Sscanf(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:], "%d.jpg", &seed); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(JPEG(seed))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	// Every link (the vendor's CDN host) is served on loopback.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	var out []contract.Record
	for _, v := range vs {
		now := v.DecidedAt.Add(time.Minute)
		cfg := archiver.DefaultConfig()
		cfg.Store, cfg.HTTP, cfg.SpoolDir, cfg.RetryMin, cfg.RetryMax = b, hc, spool, time.Millisecond, 10*time.Millisecond
		cfg.Now = func() time.Time { return now }
		a, err := archiver.New(cfg)
		if err != nil {
			return nil, err
		}
		var rs []contract.Response
		switch v.Vendor {
		case contract.Megvii:
			rs = megvii(v)
		case contract.Baidu:
			rs = baidu(v, srv.URL)
		default:
			return nil, fmt.Errorf("vendor %q", v.Vendor)
		}
		issued := v.DecidedAt.Add(-10 * time.Minute)
		done := v.DecidedAt.Add(-2 * time.Minute)
		term := contract.Terminal{Vendor: v.Vendor, VerificationID: v.ID, BizNo: v.BizNo, Outcome: contract.OutcomeHarvested, FlowStatus: "OK",
			IssuedAt: &issued, CompletedAt: &done, DecidedAt: v.DecidedAt, Deadline: v.DecidedAt.Add(23 * time.Hour), WindowLeftSeconds: 82800}
		if v.Vendor == contract.Baidu {
			term.FlowStatus, term.Landing = "success", "success"
		}
		for _, r := range rs {
			id := contract.ResponseID(r.Vendor, r.VerificationID, r.Endpoint, r.Attempt)
			if _, err := a.ArchiveResponse(ctx, id, r); err != nil {
				return nil, err
			}
			term.Responses = append(term.Responses, id)
		}
		raw, err := json.Marshal(term)
		if err != nil {
			return nil, err
		}
		rec, err := a.Finish(ctx, term, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

func response(v Verification, endpoint string, body []byte) contract.Response {
	at := v.DecidedAt.Add(-time.Minute)
	return contract.Response{Vendor: v.Vendor, VerificationID: v.ID, Endpoint: endpoint, HTTPStatus: 200, FetchedAt: at, Deadline: v.DecidedAt.Add(23 * time.Hour),
		ContentType: "application/json", Body: body, Params: map[string]string{"biz_id": v.ID}}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and numbers: cannot fail
	}
	return b
}

func megvii(v Verification) []contract.Response {
	uri := func(seed int) string {
		return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(JPEG(seed))
	}
	result := map[string]any{"request_id": "r-" + v.ID, "status": "OK", "biz_info": map[string]any{"biz_id": v.ID, "biz_no": v.BizNo},
		"idcard_info":     map[string]any{"idcard_mode": "1", "idcard_name": MegviiName, "idcard_number": MegviiIDNumber},
		"liveness_result": map[string]any{"result": "PASS", "procedure_type": "video"},
		"verify_result":   map[string]any{"result_faceid": map[string]any{"confidence": 77.1, "thresholds": map[string]any{"1e-3": 62.2, "1e-4": 69.3}}}}
	callback := mustJSON(result)
	result["images"] = map[string]any{"image_best": uri(v.Seed + 1), "image_idcard_front": uri(v.Seed + 2), "image_idcard_back": uri(v.Seed + 3)}
	cb := response(v, contract.EndpointCallback, callback)
	cb.Sign, cb.SignedBy = "0123456789abcdef0123456789abcdef01234567", "k1"
	return []contract.Response{cb, response(v, "get_result", mustJSON(result))}
}

func baidu(v Verification, base string) []contract.Response {
	link := func(seed int) string { return base + "/media/" + fmt.Sprint(seed) + ".jpg" }
	attempt := func(order int, passed bool) map[string]any {
		s := v.Seed + 10*order
		return map[string]any{"order": order, "is_verify_passed": passed, "code": "0", "verify_time": "2026-11-23 10:10:10", "is_charged": true, "charge_type": "verify",
			"verify_detail": map[string]any{"face_image": link(s + 1), "score": 89.9, "threshold": 80, "liveness_score": 0, "spoofing_score": 0, "risk_level": "1"},
			"idcard_confirm": map[string]any{"name": BaiduName, "idcard_number": BaiduIDNumber,
				"idcard_images": map[string]any{"front_image": link(s + 2), "back_image": link(s + 3)}}}
	}
	getall := map[string]any{"success": true, "log_id": "1", "result": map[string]any{"verify_count": 2, "verify_result": []any{attempt(1, false), attempt(2, true)}}}
	detail := map[string]any{"success": true, "log_id": "2", "result": map[string]any{
		"verify_result":  map[string]any{"score": 89.9, "liveness_score": 0.97, "spoofing_score": 0.01},
		"idcard_confirm": map[string]any{"name": BaiduName, "idcard_number": BaiduIDNumber}}}
	return []contract.Response{response(v, "result/getall", mustJSON(getall)), response(v, "result/detail", mustJSON(detail))}
}

// Read returns an object's bytes, or fails t.
func Read(t testing.TB, b objstore.Bucket, key string) []byte {
	t.Helper()
	rc, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	defer rc.Close()
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// MinIOBucket starts MinIO for t (see devs3test.Start) and returns it with
// its bucket "evidence", created.
func MinIOBucket(t testing.TB) (*devs3.Server, *objstore.S3) {
	t.Helper()
	srv := devs3test.Start(t)
	b, err := objstore.NewS3(objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "evidence", PathStyle: true,
		AccessKey: config.NewSecret(srv.User), SecretKey: config.NewSecret(srv.Password)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// LogRecords makes the index entries of recs, in that order, the leaves of
// an evidence log in b (under ledger.DefaultPrefix), signed with a new key,
// and returns the log's public key (as --log-key takes it).
func LogRecords(t testing.TB, b objstore.Bucket, recs ...contract.Record) string {
	t.Helper()
	ctx := context.Background()
	skey, _, err := ledger.GenerateKey("evidence.test/faceharvest")
	if err != nil {
		t.Fatal(err)
	}
	s, v, vkey, err := ledger.KeyPair(skey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(ctx, ledger.Config{Bucket: b, Signer: s, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	var leaves []ledger.Leaf
	for _, r := range recs {
		key := archiver.IndexKey(r.Vendor, r.VerificationID)
		leaves = append(leaves, ledger.Leaf{Key: key, Data: Read(t, b, key)})
	}
	if _, err := l.Append(ctx, leaves); err != nil {
		t.Fatal(err)
	}
	return vkey
}
