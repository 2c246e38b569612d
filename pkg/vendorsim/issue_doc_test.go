package vendorsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/megvii"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// The issuing calls checked against document 001's tables and examples
// (一、方案功能接口 1-3, 三、常见问题 1).

// faceprint posts body to a faceprint endpoint as the document's request
// example does (access_token in the URL, Content-Type application/json unless
// ct says otherwise) and returns the decoded answer.
func (h *harness) faceprint(t *testing.T, endpoint, ct string, body []byte) map[string]any {
	t.Helper()
	if ct == "" {
		ct = "application/json"
	}
	u := h.baiduURL + "/rpc/2.0/brain/solution/faceprint/" + endpoint + "?access_token=" + url.QueryEscape(h.lastToken(t))
	resp, err := http.Post(u, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %s", endpoint, raw)
	}
	return m
}

func succeeded(m map[string]any) bool { return m["success"] == true }

// jpegOf returns the base64 of a w×h JPEG.
func jpegOf(t *testing.T, w, h int) string {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// 001 §1: the request example {"plan_id" : 1} (a number, though the table
// says string) is accepted, and the answer has the example's shape.
func TestBaiduGenerateDocumentExample(t *testing.T) {
	h := newHarness(t, nil)
	req := []byte(`{
"plan_id" : 1
}`)
	got := h.faceprint(t, baidu.EndpointGenerate, "", req)
	var want map[string]any
	_ = json.Unmarshal(vendordocs.MustExample("baidu_verifytoken_generate.json"), &want)
	res, _ := got["result"].(map[string]any)
	if !succeeded(got) || res == nil {
		t.Fatalf("generate: %v", got)
	}
	if _, ok := res["verify_token"].(string); !ok {
		t.Fatalf("verify_token not a string: %v", got)
	}
	if _, ok := got["log_id"].(string); !ok {
		t.Fatalf("log_id not a string (the document's example has \"1814798895\"): %v", got)
	}
}

// 001 §1-3 (注意事项): Content-Type为application/json.
func TestBaiduIssuingWantsJSONContentType(t *testing.T) {
	h := newHarness(t, nil)
	if got := h.faceprint(t, baidu.EndpointGenerate, "application/x-www-form-urlencoded", []byte(`{"plan_id":"1"}`)); succeeded(got) {
		t.Fatalf("a form content type was accepted: %v", got)
	}
	if got := h.faceprint(t, baidu.EndpointGenerate, "application/json; charset=utf-8", []byte(`{"plan_id":"1"}`)); !succeeded(got) {
		t.Fatalf("application/json with a charset refused: %v", got)
	}
}

// 001 §2: verify_token, id_name and id_no are required (必选 是);
// certificate_type is an optional int, 0 to 5.
func TestBaiduSubmitParameters(t *testing.T) {
	h := newHarness(t, nil)
	vt := h.createB(t, BaiduSpec{})
	// The document's request example, without its // comment (JSON has none).
	ex := []byte(`{
"verify_token": "` + vt + `",
"id_name": "张三",
"id_no": "500***********3390",
"certificate_type": 0
}`)
	got := h.faceprint(t, baidu.EndpointSubmit, "", ex)
	var want map[string]any
	_ = json.Unmarshal(vendordocs.MustExample("baidu_idcard_submit.json"), &want)
	if !succeeded(got) || got["result"] != want["result"] {
		t.Fatalf("document example: %v (the document answers %v)", got, want)
	}
	for name, body := range map[string]string{
		"no id_name":             `{"verify_token":"` + vt + `","id_no":"500000199001013390"}`,
		"no id_no":               `{"verify_token":"` + vt + `","id_name":"张三"}`,
		"empty id_no":            `{"verify_token":"` + vt + `","id_name":"张三","id_no":""}`,
		"certificate_type 6":     `{"verify_token":"` + vt + `","id_name":"张三","id_no":"500000199001013390","certificate_type":6}`,
		"certificate_type \"0\"": `{"verify_token":"` + vt + `","id_name":"张三","id_no":"500000199001013390","certificate_type":"0"}`,
	} {
		if got := h.faceprint(t, baidu.EndpointSubmit, "", []byte(body)); succeeded(got) || got["error_code"] != float64(baidu.CodeInvalidParam) {
			t.Errorf("%s: %v", name, got)
		}
	}
	for _, ct := range []int{1, 4, 5} {
		body := `{"verify_token":"` + vt + `","id_name":"张三","id_no":"500000199001013390","certificate_type":` + string(rune('0'+ct)) + `}`
		if got := h.faceprint(t, baidu.EndpointSubmit, "", []byte(body)); !succeeded(got) {
			t.Errorf("certificate_type %d: %v", ct, got)
		}
	}
}

// 001 §3: image is base64 of at most 10 MB once encoded, under 1920*1080;
// quality_control and liveness_control take NONE, LOW, NORMAL or HIGH.
func TestBaiduUploadMatchImageParameters(t *testing.T) {
	h := newHarness(t, nil)
	vt := h.createB(t, BaiduSpec{})
	small := jpegOf(t, 480, 640)
	// The document's request example with a real picture (its "/9j/4AAQ..."
	// is a JPEG's first bytes only) and without its trailing comma.
	ex := []byte(`{
"verify_token": "` + vt + `",
"image": "` + small + `",
"quality_control" : "LOW",
"liveness_control" : "LOW"
}`)
	got := h.faceprint(t, baidu.EndpointUploadMatch, "", ex)
	if !succeeded(got) || got["result"] != nil {
		t.Fatalf("document example: %v", got)
	}
	for _, c := range []string{"NONE", "NORMAL", "HIGH"} {
		body := `{"verify_token":"` + vt + `","image":"` + small + `","quality_control":"` + c + `","liveness_control":"` + c + `"}`
		if got := h.faceprint(t, baidu.EndpointUploadMatch, "", []byte(body)); !succeeded(got) {
			t.Errorf("%s: %v", c, got)
		}
	}
	for name, img := range map[string]string{
		"1920x1080":         jpegOf(t, 1920, 1080),
		"1080x1920":         jpegOf(t, 1080, 1920),
		"2000x600":          jpegOf(t, 2000, 600),
		"not a picture":     base64.StdEncoding.EncodeToString([]byte("\xff\xd8\xff\xe0 not a picture")),
		"the document's":    "/9j/4AAQSkZJRgABAQAAAQABAAD/",
		"a data URI":        "data:image/jpeg;base64," + small,
		"over 10 MB":        small + strings.Repeat("A", 10<<20),
		"URL-safe alphabet": strings.NewReplacer("+", "-", "/", "_").Replace(small) + "-_",
	} {
		body := `{"verify_token":"` + vt + `","image":"` + img + `"}`
		if got := h.faceprint(t, baidu.EndpointUploadMatch, "", []byte(body)); succeeded(got) || got["error_code"] != float64(baidu.CodeInvalidParam) {
			t.Errorf("image %s: %v", name, got)
		}
	}
	for name, body := range map[string]string{
		"quality_control MEDIUM": `{"verify_token":"` + vt + `","image":"` + small + `","quality_control":"MEDIUM"}`,
		"liveness_control low":   `{"verify_token":"` + vt + `","image":"` + small + `","liveness_control":"low"}`,
		"liveness_control 1":     `{"verify_token":"` + vt + `","image":"` + small + `","liveness_control":1}`,
	} {
		if got := h.faceprint(t, baidu.EndpointUploadMatch, "", []byte(body)); succeeded(got) || got["error_code"] != float64(baidu.CodeInvalidParam) {
			t.Errorf("%s: %v", name, got)
		}
	}
}

// 001 三、常见问题 1 (2) and (3): a verify_token not used within two hours,
// or whose verification is over, answers Token无效或者已过期, to
// idcard/submit and uploadMatchImage as to any call.
func TestBaiduIssuingCallsOnASpentToken(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	stale := h.createB(t, BaiduSpec{NeverCompletes: true})
	done := h.createB(t, BaiduSpec{CompleteAfter: Duration(time.Minute)})
	h.clk.Advance(2 * time.Minute)
	in := baidu.UploadMatchImage{VerifyToken: done, Image: jpegOf(t, 64, 64)}
	if _, err := h.baidu.UploadMatchImage(ctx, in); err == nil || !strings.Contains(err.Error(), baidu.TokenInvalidMessage) {
		t.Errorf("uploadMatchImage after the verification: %v", err)
	}
	if _, err := h.baidu.SubmitIDCard(ctx, baidu.SubmitIDCard{VerifyToken: done, IDName: "张三", IDNo: "500000199001013390"}); err == nil || !strings.Contains(err.Error(), baidu.TokenInvalidMessage) {
		t.Errorf("idcard/submit after the verification: %v", err)
	}
	if _, err := h.baidu.SubmitIDCard(ctx, baidu.SubmitIDCard{VerifyToken: stale, IDName: "张三", IDNo: "500000199001013390"}); err != nil {
		t.Fatalf("idcard/submit within the two hours: %v", err)
	}
	h.clk.Advance(2 * time.Hour)
	if _, err := h.baidu.SubmitIDCard(ctx, baidu.SubmitIDCard{VerifyToken: stale, IDName: "张三", IDNo: "500000199001013390"}); err == nil || !strings.Contains(err.Error(), baidu.TokenInvalidMessage) {
		t.Errorf("idcard/submit past the two hours: %v", err)
	}
}

// Document 000, get_result's idcard_info: idcard_mode and
// idcard_uneditable_field are the ones chosen at get_token (表示 get_token
// 时选择的 idcard_mode); idcard_mode_user comes only with idcard_mode=4. Two
// tokens: one answers in 000's spelling, the other in 002's
// (idcard_uneditable_feild).
func TestMegviiGetTokenIDCardChoicesEchoed(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	for i, mode := range []string{"4", "4", "2"} {
		tr := megvii.TokenRequest{ReturnURL: "https://app.example/r", NotifyURL: h.landing.srv.URL + "/n", BizNo: "b-" + mode,
			Options: map[string]string{"idcard_mode": mode, "idcard_uneditable_field": "idcard_number"}}
		tok, err := h.megvii.GetToken(ctx, tr)
		if err != nil {
			t.Fatal(err)
		}
		h.clk.Advance(time.Minute)
		r, err := h.megvii.GetResult(ctx, tok.BizID, megvii.GetResultOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ii := r.IDCardInfo
		if ii == nil || string(ii.Mode) != mode || ii.UneditableField != "idcard_number" {
			t.Fatalf("token %d: idcard_info %+v, want idcard_mode %s and idcard_uneditable_field idcard_number: %s", i, ii, mode, r.Raw)
		}
		if want := map[string]string{"4": "0", "2": ""}[mode]; string(ii.ModeUser) != want {
			t.Errorf("idcard_mode %s: idcard_mode_user %q, want %q", mode, ii.ModeUser, want)
		}
	}
	for _, mode := range []string{"5", "-1", "x"} {
		tr := megvii.TokenRequest{ReturnURL: "https://app.example/r", NotifyURL: h.landing.srv.URL + "/n", BizNo: "b", Options: map[string]string{"idcard_mode": mode}}
		if _, err := h.megvii.GetToken(ctx, tr); vendorerr.ClassOf(err) != vendorerr.CallerBug || !strings.Contains(err.Error(), megvii.ErrBadArguments) {
			t.Errorf("idcard_mode %s: %v", mode, err)
		}
	}
}
