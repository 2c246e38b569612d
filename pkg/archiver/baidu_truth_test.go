package archiver

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// docJSON decodes a document example for editing.
func docJSON(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(vendordocs.MustExample(name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func attemptsOf(m map[string]any) []any { return m["result"].(map[string]any)["verify_result"].([]any) }

// recordJSON is the record as a consumer reads it.
func recordJSON(t *testing.T, r contract.Record) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustJSON(t, r), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBaiduScoresFromDetail (issue 14, item 9): getall's liveness_score and
// spoofing_score are reserved and currently 0 (001: 预留功能字段,当前返回为0):
// the record takes detail's liveness_score. detail's score is 0 when only
// liveness ran (仅活体检测时返回为0): no face-match score then.
func TestBaiduScoresFromDetail(t *testing.T) {
	schema := schematest.Compile(t)
	srv, _ := mediaServer(t)
	getall := docJSON(t, "baidu_result_getall.json")
	d := attemptsOf(getall)[0].(map[string]any)["verify_detail"].(map[string]any)
	d["liveness_score"], d["spoofing_score"] = 0, 0 // as 001 says getall answers today
	livenessOnly := docJSON(t, "baidu_result_getall.json")
	lo := attemptsOf(livenessOnly)[0].(map[string]any)["verify_detail"].(map[string]any)
	lo["liveness_score"], lo["spoofing_score"], lo["score"] = 0, 0, ""
	detailLiveness := docJSON(t, "baidu_result_detail.json")
	detailLiveness["result"].(map[string]any)["verify_result"].(map[string]any)["score"] = 0
	cases := []struct {
		name           string
		getall, detail map[string]any
		liveness       float64
		match          []string // face_match sources
	}{
		{"comparison plan", getall, docJSON(t, "baidu_result_detail.json"), 0.9672966, []string{"baidu_verify"}},
		{"liveness only", livenessOnly, detailLiveness, 0.9672966, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newTest(t, objstore.NewMemory(), loopbackClient(srv))
			rec := archive(t, a, terminal(contract.Baidu, "s1", contract.OutcomeHarvested),
				response(contract.Baidu, "s1", "result/getall", mustJSON(t, c.getall)), response(contract.Baidu, "s1", "result/detail", mustJSON(t, c.detail)))
			schematest.Validate(t, schema, mustJSON(t, rec))
			if rec.Liveness == nil || rec.Liveness.Score == nil || *rec.Liveness.Score != c.liveness {
				t.Fatalf("liveness %+v: want detail's %v, not getall's reserved 0", rec.Liveness, c.liveness)
			}
			var sources []string
			for _, fm := range rec.FaceMatch {
				sources = append(sources, fm.Source)
				if fm.Score != nil && *fm.Score == 0 {
					t.Errorf("a 0 face-match score recorded: %+v", fm)
				}
			}
			if strings.Join(sources, ",") != strings.Join(c.match, ",") {
				t.Errorf("face match %+v, want sources %v", rec.FaceMatch, c.match)
			}
			for _, at := range rec.Attempts {
				if at.LivenessScore != nil || at.SpoofingScore != nil {
					t.Errorf("attempt %d carries getall's reserved 0 as a score: %+v", at.Order, at)
				}
			}
		})
	}
}

// TestBaiduMediaRecording (issue 14, item 10): recording is off by default
// (001: 视频录制功能默认不开启) and media/query then answers without video
// data: the record says not_recorded; with links, recorded; without a
// media/query answer, not_queried.
func TestBaiduMediaRecording(t *testing.T) {
	schema := schematest.Compile(t)
	srv, _ := mediaServer(t)
	empty := mustJSON(t, map[string]any{"success": true, "log_id": "7", "result": map[string]any{"processVideo": []string{}, "video": []string{}, "images": []string{}, "extInfo": nil}})
	cases := []struct {
		name string
		rs   []contract.Response
		want string
	}{
		{"recording off", []contract.Response{response(contract.Baidu, "r1", "result/media/query", empty)}, "not_recorded"},
		{"recorded", []contract.Response{response(contract.Baidu, "r1", "result/media/query", vendordocs.MustExample("baidu_result_media_query.json"))}, "recorded"},
		{"not called", []contract.Response{response(contract.Baidu, "r1", "result/getall", vendordocs.MustExample("baidu_result_getall.json"))}, "not_queried"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := newTest(t, objstore.NewMemory(), loopbackClient(srv))
			rec := archive(t, a, terminal(contract.Baidu, "r1", contract.OutcomeHarvested), c.rs...)
			schematest.Validate(t, schema, mustJSON(t, rec))
			if got := recordJSON(t, rec)["media_recording"]; got != c.want {
				t.Fatalf("media_recording %v, want %s", got, c.want)
			}
		})
	}
}

// TestBaiduEveryAttemptWithItsMedia (issue 14, item 6): a token polled while
// its user retried has several getall answers; the record lists every
// attempt of the latest, each with its own face and ID-card images, and
// lists an image the answers share once.
func TestBaiduEveryAttemptWithItsMedia(t *testing.T) {
	schema := schematest.Compile(t)
	srv, _ := mediaServer(t)
	attempt := func(order int, passed bool) map[string]any {
		a := attemptsOf(docJSON(t, "baidu_result_getall.json"))[0].(map[string]any)
		a["order"], a["is_verify_passed"] = order, passed
		a["verify_detail"].(map[string]any)["face_image"] = srv.URL + "/v1/face" + string(rune('0'+order)) + ".jpg"
		imgs := a["idcard_confirm"].(map[string]any)["idcard_images"].(map[string]any)
		imgs["front_image"], imgs["back_image"] = srv.URL+"/v1/front"+string(rune('0'+order))+".jpg", srv.URL+"/v1/back"+string(rune('0'+order))+".jpg"
		return a
	}
	getall := func(attempts ...any) []byte {
		m := docJSON(t, "baidu_result_getall.json")
		m["result"].(map[string]any)["verify_result"] = attempts
		m["result"].(map[string]any)["verify_count"] = len(attempts)
		return mustJSON(t, m)
	}
	first := response(contract.Baidu, "a1", "result/getall", getall(attempt(1, false)))
	second := response(contract.Baidu, "a1", "result/getall", getall(attempt(1, false), attempt(2, true)))
	second.Attempt, second.FetchedAt = 2, first.FetchedAt.Add(20*time.Minute)
	a := newTest(t, objstore.NewMemory(), loopbackClient(srv))
	rec := archive(t, a, terminal(contract.Baidu, "a1", contract.OutcomeHarvested), first, second)
	schematest.Validate(t, schema, mustJSON(t, rec))
	m := recordJSON(t, rec)
	attempts, _ := m["attempts"].([]any)
	if len(attempts) != 2 {
		t.Fatalf("attempts %v: want both of the latest getall", m["attempts"])
	}
	for i, x := range attempts {
		media, _ := x.(map[string]any)["media"].([]any)
		kinds := map[string]bool{}
		for _, y := range media {
			mm := y.(map[string]any)
			kinds[mm["kind"].(string)] = mm["status"] == "stored"
		}
		if len(media) != 3 || !kinds["face_image"] || !kinds["idcard_front"] || !kinds["idcard_back"] {
			t.Errorf("attempt %d media %v: want its own face and ID-card images, stored", i+1, media)
		}
	}
	if p := rec.Passed; p == nil || !*p || rec.FlowStatus != "success" {
		t.Errorf("passed %v flow %q", p, rec.FlowStatus)
	}
	if len(rec.Media) != 6 {
		t.Errorf("%d media listed, want 6 (attempt 1's images once)", len(rec.Media))
	}
}

// TestMegviiSelfieNotAskedListed: 000 and 002 say return_image=4 returns all
// images. A selfie flow's answer to 4 that lacks the selfies (the budget
// allowed no other call) lists them as not_obtained, asked for with 4 but
// not in the answer; the ID card's sides it carried are stored.
func TestMegviiSelfieNotAskedListed(t *testing.T) {
	schema := schematest.Compile(t)
	srv, _ := mediaServer(t)
	img := "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(testJPEG(t, 5))
	body := mustJSON(t, map[string]any{"request_id": "r", "time_used": 3, "status": "OK", "biz_info": map[string]any{"biz_id": "s5"},
		"liveness_result": map[string]any{"result": "PASS", "procedure_type": "selfie"},
		"idcard_info":     map[string]any{"idcard_mode": 1, "front_side": map[string]any{"upload_times": 1}, "back_side": map[string]any{"upload_times": 1}},
		"images":          map[string]any{"image_idcard_front": img, "image_idcard_back": img}})
	r := response(contract.Megvii, "s5", "get_result", body)
	r.Params["return_image"] = "4"
	a := newTest(t, objstore.NewMemory(), loopbackClient(srv))
	rec := archive(t, a, terminal(contract.Megvii, "s5", contract.OutcomeHarvested), r)
	schematest.Validate(t, schema, mustJSON(t, rec))
	status := map[string]string{}
	for _, m := range rec.Media {
		status[m.Kind] = m.Status
		if m.Status == contract.MediaNotObtained && !strings.Contains(m.Reason, "asked for (return_image=4) but not in the answer") {
			t.Errorf("%s: reason %q", m.Kind, m.Reason)
		}
	}
	want := map[string]string{"selfie_front": "not_obtained", "selfie_side": "not_obtained", "idcard_front": "stored", "idcard_back": "stored"}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("%s: %q, want %q (all %v)", k, status[k], v, status)
		}
	}
}
