package archiver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/records.golden from the records built now")

const goldenFile = "testdata/records.golden"

// goldenPart is one archived answer of the golden pool.
type goldenPart struct {
	name string
	part *Part
}

// goldenPool archives the documents' examples and variants of them (a
// second getall with two attempts, failed and garbage answers, callbacks
// final, not final and unreadable), each fetched at its own time.
func goldenPool(t *testing.T, a *Archiver, v contract.Vendor) []goldenPart {
	t.Helper()
	type in struct {
		name string
		r    contract.Response
	}
	var ins []in
	at := func(name, endpoint string, body []byte, minute int, edit func(r *contract.Response)) {
		r := response(v, "gold", endpoint, body)
		r.FetchedAt = t0.Add(time.Duration(minute) * time.Minute)
		r.Attempt = len(ins)
		if edit != nil {
			edit(&r)
		}
		ins = append(ins, in{name, r})
	}
	example := func(name string) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(vendordocs.MustExample(name), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	failed := func(status int, class string) func(r *contract.Response) {
		return func(r *contract.Response) { r.HTTPStatus, r.ErrorClass = status, class }
	}
	if v == contract.Baidu {
		at("getall", "result/getall", vendordocs.MustExample("baidu_result_getall.json"), 1, nil)
		g2 := example("baidu_result_getall.json")
		res := g2["result"].(map[string]any)
		first := res["verify_result"].([]any)[0].(map[string]any)
		var second map[string]any
		_ = json.Unmarshal(mustJSON(t, first), &second)
		first["is_verify_passed"], first["code"], first["message"] = false, "222", "face not matched"
		first["verify_detail"].(map[string]any)["score"] = 41.5
		first["verify_detail"].(map[string]any)["liveness_score"] = 0
		second["order"], second["verify_time"] = 2, "2023-10-10 10:12:10"
		second["verify_detail"].(map[string]any)["face_image"] = "https://bj.bcebos.com/v1/second.jpg"
		second["idcard_confirm"].(map[string]any)["name"] = "李四"
		res["verify_result"] = []any{first, second}
		res["verify_count"] = 2
		at("getall2", "result/getall", mustJSON(t, g2), 5, nil)
		g3 := example("baidu_result_getall.json")
		a0 := g3["result"].(map[string]any)["verify_result"].([]any)[0].(map[string]any)
		a0["is_verify_passed"] = false
		delete(a0, "idcard_confirm")
		at("getall-failed", "result/getall", mustJSON(t, g3), 3, nil)
		at("detail", "result/detail", vendordocs.MustExample("baidu_result_detail.json"), 2, nil)
		d2 := example("baidu_result_detail.json")
		d2r := d2["result"].(map[string]any)
		d2r["verify_result"].(map[string]any)["spoofing"] = 0.25
		d2r["verify_result"].(map[string]any)["score"] = 0
		delete(d2r, "idcard_confirm")
		at("detail-ocr", "result/detail", mustJSON(t, d2), 4, nil)
		at("media", "result/media/query", vendordocs.MustExample("baidu_result_media_query.json"), 6, nil)
		at("media-none", "result/media/query", []byte(`{"success":true,"result":null,"log_id":"1"}`), 7, nil)
		at("getall-500", "result/getall", []byte(`{"error_code":500,"error_msg":"busy"}`), 8, failed(500, "server"))
		at("detail-garbage", "result/detail", []byte(`<html>gateway</html>`), 9, nil)
	} else {
		at("gr000", "get_result", vendordocs.MustExample("megvii_get_result_ok_000.json"), 1, func(r *contract.Response) { r.Params["return_image"] = "4" })
		at("gr002", "get_result", vendordocs.MustExample("megvii_get_result_ok_002.json"), 2, func(r *contract.Response) { r.Params["return_image"] = "1" })
		img := example("megvii_get_result_ok_000.json")
		img["images"] = map[string]any{"image_best": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(testJPEG(t, 5))}
		img["verify_time"] = t0.Add(-2 * time.Minute).Unix()
		img["liveness_result"].(map[string]any)["result"] = "FAIL"
		at("gr-img", "get_result", mustJSON(t, img), 3, func(r *contract.Response) { r.Params["return_image"], r.Params["return_verify_time"] = "1", "1" })
		unasked := example("megvii_get_result_ok_002.json")
		delete(unasked, "images")
		at("gr-unasked", "get_result", mustJSON(t, unasked), 6, nil)
		at("gr-destroyed", "get_result", []byte(`{"error_message":"DATA_DESTROYED","request_id":"r","time_used":3}`), 4, failed(403, "destroyed"))
		at("gr-garbage", "get_result", []byte(`{"status":`), 5, func(r *contract.Response) { r.Params["return_image"] = "2" })
		at("cb-ok", contract.EndpointCallback, []byte(callbackData(t, "gold", "OK")), 0, func(r *contract.Response) { *r = callbackResponse("gold", string(r.Body)) })
		var dis map[string]any
		_ = json.Unmarshal([]byte(callbackData(t, "gold", "FAILED")), &dis)
		dis["verify_result"].(map[string]any)["result_faceid"].(map[string]any)["confidence"] = 12.5
		dis["liveness_result"].(map[string]any)["result"] = "FAIL"
		at("cb-disagree", contract.EndpointCallback, mustJSON(t, dis), 0, func(r *contract.Response) { *r = callbackResponse("gold", string(r.Body)) })
		at("cb-processing", contract.EndpointCallback, []byte(callbackData(t, "gold", "PROCESSING")), 0, func(r *contract.Response) { *r = callbackResponse("gold", string(r.Body)) })
		at("cb-bad", contract.EndpointCallback, []byte(`[1,2]`), 0, func(r *contract.Response) { *r = callbackResponse("gold", string(r.Body)) })
	}
	var out []goldenPart
	for i, in := range ins {
		p, err := a.ArchiveResponse(context.Background(), fmt.Sprintf("%s-%02d", v, i), in.r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, goldenPart{in.name, p})
	}
	return out
}

// goldenTerminals are the terminals each combination is built with: one
// harvested and masked with every time and hint set, one failed and unmasked
// with none.
func goldenTerminals(v contract.Vendor) []struct {
	name    string
	t       contract.Terminal
	mask    bool
	missing []string
} {
	issued, completed := t0.Add(-10*time.Minute), t0.Add(-time.Minute)
	h := terminal(v, "gold", contract.OutcomeHarvested)
	h.BizNo, h.FlowStatus, h.Landing, h.IssuedAt, h.CompletedAt = "", "OK", "success", &issued, &completed
	f := terminal(v, "gold", contract.OutcomeFailed)
	f.Reason, f.BizNo, f.FlowStatus, f.Landing = "window closed after failures: timeout", "loan-term", "FAILED", "elsewhere"
	return []struct {
		name    string
		t       contract.Terminal
		mask    bool
		missing []string
	}{{"harvested", h, true, []string{"gone-1"}}, {"failed", f, false, nil}}
}

// goldenSequences are the orders of pool items a record is built from:
// each item alone, each ordered pair, each triple in pool order and
// reversed, and the whole pool both ways.
func goldenSequences(n int) [][]int {
	var out [][]int
	for i := range n {
		out = append(out, []int{i})
	}
	for i := range n {
		for j := range n {
			if i != j {
				out = append(out, []int{i, j})
			}
		}
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			for k := j + 1; k < n; k++ {
				out = append(out, []int{i, j, k}, []int{k, j, i})
			}
		}
	}
	all, rev := make([]int, n), make([]int, n)
	for i := range n {
		all[i], rev[i] = i, n-1-i
	}
	return append(out, all, rev)
}

// TestRecordsGolden pins the records buildRecord makes for the documents'
// examples and their variants, in every order of up to three answers and
// with both terminals: a change to which answer wins shows here as a
// changed digest. go test -run TestRecordsGolden -update rewrites the file.
func TestRecordsGolden(t *testing.T) {
	srv, _ := mediaServer(t)
	a := newTest(t, objstore.NewMemory(), loopbackClient(srv))
	evidence := contract.ObjectRef{Key: "gold/evidence.json", SHA256: strings.Repeat("ab", 32), Size: 99, ContentType: contract.ContentTypeJSON}
	archivedAt := t0.Add(2 * time.Hour)
	var got []string
	records := map[string][]byte{}
	for _, v := range []contract.Vendor{contract.Baidu, contract.Megvii} {
		pool := goldenPool(t, a, v)
		before := mustJSON(t, pool[0].part)
		for _, seq := range goldenSequences(len(pool)) {
			var names []string
			var parts []*Part
			for _, i := range seq {
				names = append(names, pool[i].name)
				parts = append(parts, pool[i].part)
			}
			for _, term := range goldenTerminals(v) {
				ev := Evidence{Schema: EvidenceSchema, Vendor: v, VerificationID: "gold", Responses: parts, Missing: term.missing}
				rec := buildRecord(term.t, ev, evidence, archivedAt, term.mask)
				b := mustJSON(t, rec)
				sum := sha256.Sum256(b)
				name := fmt.Sprintf("%s:%s|%s", v, strings.Join(names, ","), term.name)
				records[name] = b
				if os.Getenv("GOLDEN_SHOW") == name {
					t.Logf("%s", b)
				}
				got = append(got, name+" "+hex.EncodeToString(sum[:8]))
			}
		}
		if after := mustJSON(t, pool[0].part); !bytes.Equal(before, after) {
			t.Errorf("buildRecord changed a part: %s became %s", before, after)
		}
	}
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(goldenFile)
	if err != nil {
		t.Fatalf("%v (go test -run TestRecordsGolden -update writes it)", err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, sum, ok := strings.Cut(sc.Text(), " "); ok {
			want[name] = sum
		}
	}
	if len(want) != len(got) {
		t.Errorf("%d records built, the golden file has %d", len(got), len(want))
	}
	bad := 0
	for _, line := range got {
		name, sum, _ := strings.Cut(line, " ")
		if want[name] != sum {
			if bad++; bad <= 5 {
				t.Errorf("%s: record %s\nchanged (digest %s, golden %q)", name, records[name], sum, want[name])
			}
		}
	}
	if bad > 5 {
		t.Errorf("... and %d more records changed", bad-5)
	}
}
