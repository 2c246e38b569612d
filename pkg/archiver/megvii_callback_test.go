package archiver

import (
	"context"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// callbackResponse is a signed callback as the harvester records it.
func callbackResponse(id, data string) contract.Response {
	r := response(contract.Megvii, id, contract.EndpointCallback, []byte(data))
	r.Params = nil
	r.Sign, r.SignedBy = megvii.Sign("s3cret", data), "sha256:0a1b2c3d"
	return r
}

// megviiSelfieExamples are document 000's get_result example (m) and
// document 002's selfie liveness_result example (lr), decoded for a test to
// edit.
func megviiSelfieExamples(t *testing.T) (m, lr map[string]any) {
	t.Helper()
	if err := json.Unmarshal(vendordocs.MustExample("megvii_get_result_ok_000.json"), &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(vendordocs.MustExample("megvii_liveness_selfie_002.json"), &lr); err != nil {
		t.Fatal(err)
	}
	return m, lr
}

// callbackData is document 000's success example for verification id, with
// the given status, as a callback carries it (no images), compacted oddly:
// the evidence must keep the exact bytes that were signed.
func callbackData(t *testing.T, id, status string) string {
	var m map[string]any
	if err := json.Unmarshal(vendordocs.MustExample("megvii_get_result_ok_000.json"), &m); err != nil {
		t.Fatal(err)
	}
	m["status"] = status
	m["liveness_result"].(map[string]any)["result"] = "PASS"
	m["biz_info"] = map[string]any{"biz_id": id, "biz_no": "loan-9"}
	delete(m, "images")
	b, _ := json.MarshalIndent(m, "", "   ")
	return string(b)
}

// Document 000: a callback's data is the verification's result (人脸核身返回值
// (json格式)), signed. When get_result cannot deliver, the record comes from
// it; when get_result does, the record is get_result's and both are kept.
func TestMegviiRecordFromTheSignedCallback(t *testing.T) {
	schema := schematest.Compile(t)
	destroyed := []byte(`{"error_message":"DATA_DESTROYED","request_id":"r","time_used":3}`)
	for _, c := range []struct {
		name        string
		outcome     string // the terminal's
		reason      string
		getResult   func(id string) *contract.Response
		wantOutcome string
		wantMedia   map[string]string // kind -> status
		wantProblem string
	}{
		{"get_result destroyed (the app called it first)", contract.OutcomeLost, "the vendor destroyed the data: DATA_DESTROYED",
			func(id string) *contract.Response {
				r := response(contract.Megvii, id, "get_result", destroyed)
				r.HTTPStatus, r.ErrorClass, r.Attempt = 403, "destroyed", 1
				return &r
			},
			contract.OutcomeHarvestedWithoutImages,
			map[string]string{"image_best": "not_obtained", "idcard_front": "not_obtained", "idcard_back": "not_obtained"}, ""},
		{"get_result failed without an answer", contract.OutcomeFailed, "window closed after failures: timeout", nil,
			contract.OutcomeHarvestedWithoutImages, map[string]string{"image_best": "not_obtained"}, ""},
		{"both, and they disagree", contract.OutcomeHarvested, "",
			func(id string) *contract.Response {
				var m map[string]any
				_ = json.Unmarshal([]byte(callbackData(t, id, "OK")), &m)
				m["verify_result"].(map[string]any)["result_faceid"].(map[string]any)["confidence"] = 12.5
				r := response(contract.Megvii, id, "get_result", mustJSON(t, m))
				r.Params, r.Attempt = map[string]string{"biz_id": id, "return_image": "4"}, 1
				return &r
			},
			contract.OutcomeHarvested, map[string]string{"image_best": "not_obtained"}, "faceid score"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := objstore.NewMemory()
			a := newTest(t, store, nil)
			id := "m-cb"
			data := callbackData(t, id, "OK")
			rs := []contract.Response{callbackResponse(id, data)}
			if c.getResult != nil {
				rs = append(rs, *c.getResult(id))
			}
			term := terminal(contract.Megvii, id, c.outcome)
			term.Reason, term.FlowStatus = c.reason, "OK"
			ctx := context.Background()
			for _, r := range rs {
				cid := r.ID()
				if _, err := a.ArchiveResponse(ctx, cid, r); err != nil {
					t.Fatal(err)
				}
				term.Responses = append(term.Responses, cid)
			}
			raw, _ := json.Marshal(term)
			rec, err := a.Finish(ctx, term, raw)
			if err != nil {
				t.Fatal(err)
			}
			schematest.Validate(t, schema, mustJSON(t, rec))
			if rec.Outcome != c.wantOutcome {
				t.Fatalf("outcome %s (%s), want %s", rec.Outcome, rec.Reason, c.wantOutcome)
			}
			if rec.Liveness == nil || rec.Liveness.Result != "pass" || rec.Liveness.Procedure != "video" || len(rec.FaceMatch) == 0 ||
				rec.Identity == nil || rec.Identity.Name != "陈**" || rec.BizNo != "loan-9" {
				t.Errorf("liveness %+v face_match %+v identity %+v biz_no %q", rec.Liveness, rec.FaceMatch, rec.Identity, rec.BizNo)
			}
			if c.wantOutcome == contract.OutcomeHarvestedWithoutImages && !strings.Contains(rec.Reason, c.reason) {
				t.Errorf("reason %q does not say what get_result did (%q)", rec.Reason, c.reason)
			}
			got := map[string]contract.MediaRef{}
			for _, m := range rec.Media {
				got[m.Kind] = m
			}
			for kind, st := range c.wantMedia {
				if got[kind].Status != st || got[kind].Reason == "" {
					t.Errorf("media %s: %+v, want %s with a reason", kind, got[kind], st)
				}
			}
			problems := strings.Join(rec.Problems, "; ")
			if (c.wantProblem == "") != (problems == "") || !strings.Contains(problems, c.wantProblem) {
				t.Errorf("problems %q, want %q", problems, c.wantProblem)
			}
			// The evidence keeps the callback byte for byte, with its sign and
			// signer: the signature can be checked again from the store alone.
			rc, err := store.Get(ctx, rec.Evidence.Key)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			var ev Evidence
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatal(err)
			}
			var cb *Part
			for _, p := range ev.Responses {
				if p.Endpoint == contract.EndpointCallback {
					cb = p
				}
			}
			if cb == nil || cb.Data != data || cb.Sign != megvii.Sign("s3cret", data) || cb.SignedBy != "sha256:0a1b2c3d" || len(ev.Responses) != len(rs) {
				t.Fatalf("evidence lacks the callback as signed: %s", b)
			}
		})
	}
}

// A signed callback is kept verbatim and read once for its facts: it is
// not scanned for images first (a callback carries none, and the scan's
// result was thrown away). Measured on a callback that carries a 4 MiB
// image anyway: reading it once copies the image twice (the verbatim data
// string and the decoded result); a scan copied it a third time.
func TestMegviiCallbackIsNotScannedForImages(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(callbackData(t, "m-scan", "OK")), &m); err != nil {
		t.Fatal(err)
	}
	img := strings.Repeat("A", 4<<20)
	m["images"] = map[string]any{"image_best": "data:image/jpeg;base64," + img}
	r := callbackResponse("m-scan", string(mustJSON(t, m)))
	a := newTest(t, objstore.NewMemory(), nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := a.ArchiveResponse(context.Background(), "m-scan-cb", r); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	copies := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(img))
	if copies >= 2.5 {
		t.Errorf("archiving the callback allocated %.1f times its image: it was scanned for images", copies)
	}
}
