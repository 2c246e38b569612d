package megvii

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

func TestDocumentExamples(t *testing.T) {
	for _, name := range []string{"megvii_get_result_ok_000.json", "megvii_get_result_ok_002.json"} {
		t.Run(name, func(t *testing.T) {
			r, err := ParseResult(vendordocs.MustExample(name))
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != StatusOK || !r.Status.Final() || r.TimeUsed.Value != 93 {
				t.Errorf("status %q time_used %v", r.Status, r.TimeUsed)
			}
			if r.BizInfo.BizID != "1462259748,52b13fb5-8dfb-4537-a62b-a641d5e929f1" || r.BizInfo.BizNo != "cc47190f-5502-44a2-ab74-ea4f0f649f61" || r.BizInfo.BizExtraData != "..." {
				t.Errorf("biz_info %+v", r.BizInfo)
			}
			ic := r.IDCardInfo
			if ic == nil || ic.UneditableField != "idcard_number,idcard_valid_date" || ic.Mode != "1" || ic.Number != "xxxxxx19910602xxxx" || ic.Name != "陈AB" || ic.IssuedBy != "北京市公安局" {
				t.Fatalf("idcard_info %+v", ic)
			}
			if ic.FrontSide.OCRResult.Birthday.Year != "1991" || ic.FrontSide.UploadTimes.Value != 1 || ic.BackSide.UploadTimes.Value != 2 ||
				ic.FrontSide.OCRResult.Legality["Temporary ID Photo "].Valid != true || ic.BackSide.OCRResult.ValidDate != "2010.11.13-2020.11.13" {
				t.Errorf("sides %+v %+v", ic.FrontSide, ic.BackSide)
			}
			lr := r.LivenessResult
			if lr.ProcedureType != ProcedureVideo || lr.Details.Counters["UPLOAD_TIMES"] != 5 || lr.Details.Counters["SR_ERROR"] != 2 {
				t.Errorf("liveness %+v", lr)
			}
			if _, ok := lr.Details.Counters["VIDEO_FORMAT_UNSUPPORTED"]; !ok {
				t.Errorf("VIDEO_FORMAT_UNSUPPORTED (or its VIDOE_ misspelling) lost: %v", lr.Details.Counters)
			}
			atk := lr.FaceGenuineness.Attacks()
			if len(atk) != 3 || !atk[0].Suspected || atk[1].Suspected || atk[2].Suspected {
				t.Errorf("attacks %+v", atk)
			}
			vr := r.VerifyResult
			if vr.ResultFaceID.Confidence.Value != 68.918 || vr.ResultFaceID.Thresholds["1e-6"].Value != 79.9 || len(vr.Refs) != 1 || vr.Refs[1].Confidence.Value != 68.918 ||
				vr.ResultIDCardPhoto == nil || vr.ResultIDCardDatasource == nil || vr.IDExceptions.IDAttacked.Value != 0 || !vr.Billed() {
				t.Errorf("verify_result %+v", vr)
			}
			if len(r.Images) != 3 || !strings.HasPrefix(r.Images[ImageBest], "data: image/jpeg") {
				t.Errorf("images %v", r.Images)
			}
			d, err := ParseDataURI(r.Images[ImageIDCardFront])
			if err != nil || d.MediaType != "image/jpeg" || d.Base64 != "..." {
				t.Errorf("data URI %+v %v", d, err)
			}
			if _, err := d.Decode(); err == nil {
				t.Error(`"..." decoded as base64`)
			}
			if string(r.Raw) != string(vendordocs.MustExample(name)) {
				t.Error("raw bytes not kept")
			}
		})
	}
}

func TestPartialExamples(t *testing.T) {
	var ic IDCardInfo
	if err := ic.UnmarshalJSON(vendordocs.MustExample("megvii_idcard_info_000.json")); err != nil {
		t.Fatal(err)
	}
	if ic.UneditableField == "" || ic.ValidDate != "2010.11.13-2020.11.13" || ic.OCRFrontQuality["birth_year"].Result != "1996" || ic.OCRBackQuality["valid_date_start"].Quality.Value != 0.995 {
		t.Errorf("idcard_info %+v", ic)
	}
	var sel LivenessResult
	if err := json.Unmarshal(vendordocs.MustExample("megvii_liveness_selfie_002.json"), &sel); err != nil {
		t.Fatal(err)
	}
	if sel.Details.FaceFront["FACE_NOT_FRONT"] != 2 || sel.Details.FaceSide["FACE_NOT_SIDE"] != 2 || len(sel.Details.Counters) != 0 ||
		!sel.FaceGenuineness.SelfieInconsistent.Valid || !sel.FaceGenuineness.SelfieMetadataInconsistent.Valid {
		t.Errorf("selfie %+v %+v", sel.Details, sel.FaceGenuineness)
	}
	var vr VerifyResult
	if err := json.Unmarshal(vendordocs.MustExample("megvii_verify_result_000.json"), &vr); err != nil || vr.ErrorMessage != nil || vr.RefNumbers()[0] != 1 {
		t.Fatalf("verify_result %+v %v", vr, err)
	}
	var im Images
	if err := json.Unmarshal(vendordocs.MustExample("megvii_images_000.json"), &im); err != nil || len(im.Names()) != 3 {
		t.Fatalf("images %v %v", im, err)
	}
}

func TestQuirks(t *testing.T) {
	body, err := os.ReadFile("testdata/quirks.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseResult(body)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"lower-case status", r.Status == StatusOK},
		{"time_used as string", r.TimeUsed.Value == 12},
		{"unknown top-level field kept", string(r.Extra["verify_time"]) == "1700000000"},
		{"biz_extra_data as number", r.BizInfo.BizExtraData == "42"},
		{"misspelled feild", r.IDCardInfo.UneditableField == "idcard_name"},
		{"mode as number", r.IDCardInfo.Mode == "4"},
		{"upload_times as string", r.IDCardInfo.FrontSide.UploadTimes.Value == 3},
		{"legality as string", r.IDCardInfo.FrontSide.OCRResult.Legality["ID Photo"].Value == 0.9},
		{"counter as string", r.LivenessResult.Details.Counters["FACE_NOT_FOUND"] == 2},
		{"VIDOE normalised", r.LivenessResult.Details.Counters["VIDEO_FORMAT_UNSUPPORTED"] == 4},
		{"non-counter kept", string(r.LivenessResult.Details.Other["NOTE"]) == `"free text"`},
		{"confidence as string", r.LivenessResult.FaceGenuineness.SyntheticFaceConfidence.Value == 0.1},
		{"selfie flags as strings", r.LivenessResult.FaceGenuineness.SelfieMetadataInconsistent.Value == 2},
		{"mask suspected", r.LivenessResult.FaceGenuineness.Attacks()[1].Suspected},
		{"dynamic ref", r.VerifyResult.Refs[2].Confidence.Value == 71.5 && r.VerifyResult.Refs[2].Thresholds["1e-3"].Value == 64},
		{"null ref dropped", len(r.VerifyResult.Refs) == 1},
		{"odd ref kept", r.VerifyResult.Other["result_refX"] != nil},
		{"billed comparison error", r.VerifyResult.Billed()},
		{"null image dropped", len(r.Images) == 1},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("quirk not tolerated: %s", c.name)
		}
	}
	if _, err := json.Marshal(r.VerifyResult); err != nil {
		t.Error(err)
	}
}

func TestStatuses(t *testing.T) {
	final := map[Status]bool{StatusOK: true, StatusFailed: true, StatusCancelled: true, StatusTimeout: true, StatusWebRTCUnsupported: true}
	for _, s := range Statuses {
		if s.Final() != final[s] || !s.Known() {
			t.Errorf("%s: final=%v", s, s.Final())
		}
	}
	var s Status
	if err := s.UnmarshalJSON([]byte(`"FALED"`)); err != nil || s != StatusFailed {
		t.Errorf("FALED -> %q", s)
	}
	if Status("DONE").Known() {
		t.Error("DONE known")
	}
}

func TestClassifyErrorTable(t *testing.T) {
	cases := []struct {
		status int
		body   string
		class  vendorerr.Class
		code   string
	}{
		{400, `{"error_message":"RESULT_NOT_FOUND","request_id":"r","time_used":4}`, vendorerr.NotFound, "RESULT_NOT_FOUND"},
		{403, `{"error_message":"DATA_DESTROYED","request_id":"r","time_used":4}`, vendorerr.Destroyed, "DATA_DESTROYED"},
		{403, `{"error_message":"AUTHENTICATION_ERROR"}`, vendorerr.Account, "AUTHENTICATION_ERROR"},
		{403, `{"error_message":"AUTHORIZATION_ERROR:Denied."}`, vendorerr.Account, "AUTHORIZATION_ERROR"},
		{403, `{"error_message":"AUTHORIZATION_ERROR: quota exceeded"}`, vendorerr.Account, "AUTHORIZATION_ERROR"},
		{403, `{"error_message":"CONCURRENCY_LIMIT_EXCEEDED"}`, vendorerr.RateLimited, "CONCURRENCY_LIMIT_EXCEEDED"},
		{400, `{"error_message":"MISSING_ARGUMENTS: biz_id"}`, vendorerr.CallerBug, "MISSING_ARGUMENTS"},
		{400, `{"error_message":"BAD_ARGUMENTS:return_image"}`, vendorerr.CallerBug, "BAD_ARGUMENTS"},
		{404, `{"error_message":"API_NOT_FOUND"}`, vendorerr.CallerBug, "API_NOT_FOUND"},
		{500, `{"error_message":"INTERNAL_ERROR"}`, vendorerr.VendorFault, "INTERNAL_ERROR"},
		{503, `{"error_message":"SOMETHING_NEW"}`, vendorerr.VendorFault, "SOMETHING_NEW"},
		{200, `{"error_message":"DATA_DESTROYED"}`, vendorerr.Destroyed, "DATA_DESTROYED"},
		{502, `<html><body>Bad Gateway</body></html>`, vendorerr.VendorFault, ""},
		{404, `<html>nginx</html>`, vendorerr.CallerBug, ""},
		{429, ``, vendorerr.RateLimited, ""},
		{200, `{"request_id": "x", "status": "OK", "biz_in`, vendorerr.VendorFault, ""},
		{200, `not json`, vendorerr.VendorFault, ""},
	}
	for _, c := range cases {
		e := Classify(EndpointGetResult, c.status, []byte(c.body))
		if e == nil || e.Class != c.class || e.Code != c.code || e.HTTPStatus != c.status {
			t.Errorf("%d %.40s: got %+v", c.status, c.body, e)
		}
	}
	if e := Classify(EndpointGetResult, 200, vendordocs.MustExample("megvii_get_result_ok_000.json")); e != nil {
		t.Errorf("success classified as %v", e)
	}
	e := Classify(EndpointGetResult, 400, vendordocs.MustExample("megvii_error_result_not_found.json"))
	if e.RequestID != "1462259901,fa79992d-ca61-48de-aa50-ea337c6aad42" || !e.Class.Terminal() {
		t.Errorf("document error example: %+v", e)
	}
}

func TestCallbackDecoding(t *testing.T) {
	data := string(vendordocs.MustExample("megvii_get_result_ok_000.json"))
	secret := "api-secret-1"
	sign := Sign(secret, data)
	cb := Callback{Data: data, Sign: sign}
	cases := []struct {
		name, ct string
		body     []byte
		wantErr  error
		format   string
	}{
		{"form (document 000)", "application/x-www-form-urlencoded", cb.EncodeForm(), nil, FormatForm},
		{"form with charset", "application/x-www-form-urlencoded; charset=utf-8", cb.EncodeForm(), nil, FormatForm},
		{"json (document 002)", "application/json", cb.EncodeJSON(), nil, FormatJSON},
		{"json sniffed", "", cb.EncodeJSON(), nil, FormatJSON},
		{"form sniffed", "", cb.EncodeForm(), nil, FormatForm},
		{"json with data object", "application/json", []byte(`{"data":{"status":"OK"},"sign":"ab"}`), nil, FormatJSON},
		{"xml", "application/xml", []byte(`<x/>`), ErrUnsupportedMediaType, ""},
		{"multipart", "multipart/form-data; boundary=x", []byte(`--x--`), ErrUnsupportedMediaType, ""},
		{"bad content type", "%%%", nil, ErrUnsupportedMediaType, ""},
		{"json garbage", "application/json", []byte(`{"data":`), ErrMalformedCallback, ""},
		{"json data number", "application/json", []byte(`{"data":5,"sign":"x"}`), ErrMalformedCallback, ""},
		{"no data", "application/x-www-form-urlencoded", []byte("sign=abc"), ErrMalformedCallback, ""},
		{"no sign", "application/x-www-form-urlencoded", []byte("data=%7B%7D"), ErrMissingSign, ""},
		{"bad form", "application/x-www-form-urlencoded", []byte("data=%zz"), ErrMalformedCallback, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := bytes.Clone(c.body)
			got, err := DecodeCallback(c.ct, body)
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err %v want %v", err, c.wantErr)
			}
			if err == nil && got.Format != c.format {
				t.Fatalf("format %s", got.Format)
			}
			// The caller may reuse the body: nothing returned shares it.
			want := got
			want.Data, want.Sign = strings.Clone(got.Data), strings.Clone(got.Sign)
			for i := range body {
				body[i] = '#'
			}
			if got != want {
				t.Fatalf("overwriting the body changed the callback: %.60q", got.Data)
			}
		})
	}
	got, _ := DecodeCallback("application/x-www-form-urlencoded", cb.EncodeForm())
	if got.Data != data {
		t.Fatal("form round trip changed data")
	}
	r, err := got.ParseData()
	if err != nil || r.BizInfo.BizID == "" {
		t.Fatalf("parse data: %v", err)
	}
	if _, err := (Callback{Data: "{"}).ParseData(); !errors.Is(err, ErrMalformedCallback) {
		t.Fatalf("bad data: %v", err)
	}
}

func TestVerifySignatureRotation(t *testing.T) {
	data := `{"status":"OK"}`
	old, cur := config.NewSecret("old-secret"), config.NewSecret("new-secret")
	cases := []struct {
		name    string
		sign    string
		secrets []config.Secret
		want    int
		wantErr error
	}{
		{"current", Sign("new-secret", data), []config.Secret{cur, old}, 0, nil},
		{"previous during rotation", Sign("old-secret", data), []config.Secret{cur, old}, 1, nil},
		{"upper-case hex", strings.ToUpper(Sign("new-secret", data)), []config.Secret{cur}, 0, nil},
		{"retired secret", Sign("old-secret", data), []config.Secret{cur}, -1, ErrBadSignature},
		{"wrong data", Sign("new-secret", data+" "), []config.Secret{cur}, -1, ErrBadSignature},
		{"truncated", Sign("new-secret", data)[:39], []config.Secret{cur}, -1, ErrBadSignature},
		{"empty", "", []config.Secret{cur}, -1, ErrMissingSign},
		{"no secrets configured", Sign("new-secret", data), nil, -1, ErrBadSignature},
	}
	for _, c := range cases {
		got, err := VerifySignature(Callback{Data: data, Sign: c.sign}, c.secrets)
		if got != c.want || !errors.Is(err, c.wantErr) {
			t.Errorf("%s: got %d %v", c.name, got, err)
		}
	}
	// The document's example signature is 40 lower-case hex characters.
	if len(Sign("x", "y")) != len("ac041f49940c5afb2640a251633a8029ae69c1d5") {
		t.Error("sign length")
	}
}

func TestDataURI(t *testing.T) {
	cases := []struct {
		in      string
		mt      string
		decoded string
		err     bool
	}{
		{"data:image/jpeg;base64,aGVsbG8=", "image/jpeg", "hello", false},
		{"data: image/jpeg;base64,aGVsbG8=", "image/jpeg", "hello", false},
		{" DATA:Image/JPEG; base64 ,aGVsbG8=", "image/jpeg", "hello", false},
		{"data:image/jpeg;base64,aGVsbG8", "image/jpeg", "", true}, // truncated: padding missing
		{"data:image/jpeg;base64,aGV$bG8=", "image/jpeg", "", true},
		{"data:image/jpeg,aGVsbG8=", "", "", true},
		{"aGVsbG8=", "", "", true},
		{"data:image/png;base64", "", "", true},
	}
	for _, c := range cases {
		d, err := ParseDataURI(c.in)
		if err != nil {
			if !c.err || c.mt != "" {
				t.Errorf("%q: %v", c.in, err)
			}
			continue
		}
		if d.MediaType != c.mt {
			t.Errorf("%q: media type %q", c.in, d.MediaType)
		}
		b, err := d.Decode()
		if (err != nil) != c.err || string(b) != c.decoded {
			t.Errorf("%q: decoded %q err %v", c.in, b, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	k, s := config.NewSecret("k"), config.NewSecret("s")
	for _, cfg := range []Config{{BaseURL: "ftp://x", APIKey: k, APISecret: s}, {BaseURL: "http://", APIKey: k, APISecret: s}, {APIKey: k}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
	c, err := New(Config{APIKey: k, APISecret: s})
	if err != nil || c.base.String() != DefaultBaseURL || c.httpc == http.DefaultClient {
		t.Fatalf("defaults: %v", err)
	}
}

func secretsOf(v ...string) []config.Secret {
	out := make([]config.Secret, len(v))
	for i, s := range v {
		out[i] = config.NewSecret(s)
	}
	return out
}

// ParseImage: a data URI (either documented spelling) or, as document 000
// says images may come, a plain base64 string with no declared type.
func TestParseImage(t *testing.T) {
	for _, c := range []struct{ in, mt, b64 string }{
		{"data:image/jpeg;base64,/9j/", "image/jpeg", "/9j/"},
		{"data: image/jpeg;base64,/9j/", "image/jpeg", "/9j/"},
		{"/9j/4AAQ", "", "/9j/4AAQ"},
		{"  /9j/4AAQ\n", "", "/9j/4AAQ"},
	} {
		d, err := ParseImage(c.in)
		if err != nil || d.MediaType != c.mt || d.Base64 != c.b64 {
			t.Errorf("ParseImage(%q) = %+v, %v; want %q %q", c.in, d, err, c.mt, c.b64)
		}
	}
	if _, err := ParseImage("data:image/jpeg,/9j/"); err == nil {
		t.Error("a data URI that is not base64 was accepted")
	}
}

func TestDoURL(t *testing.T) {
	c, err := New(Config{BaseURL: "https://api.megvii.com/", APIKey: config.NewSecret("k"), APISecret: config.NewSecret("s")})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DoURL("tok+/="); got != "https://api.megvii.com/faceid/lite/do?token=tok%2B%2F%3D" {
		t.Fatalf("%s", got)
	}
}
