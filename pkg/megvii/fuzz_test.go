package megvii

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

func seedBodies(f *testing.F) {
	for _, n := range vendordocs.Names() {
		f.Add(vendordocs.MustExample(n))
	}
	if b, err := os.ReadFile("testdata/quirks.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"verify_result":{"result_ref99999999999999999999":{}}}`))
	f.Add([]byte(`{"liveness_result":{"details":{"face_front":[1]}}}`))
}

// FuzzParseResult: any body either decodes or errors; it never panics, and
// a decoded result keeps its raw bytes.
func FuzzParseResult(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseResult(body)
		if err == nil && string(r.Raw) != string(body) {
			t.Fatal("raw bytes not kept")
		}
		_ = Classify(EndpointGetResult, 200, body)
		_ = Classify(EndpointGetResult, 403, body)
		if err == nil {
			if r.LivenessResult != nil {
				_ = r.LivenessResult.FaceGenuineness.Attacks()
			}
			_ = r.VerifyResult.Billed()
			for _, n := range r.Images.Names() {
				if d, err := ParseDataURI(r.Images[n]); err == nil {
					_, _ = d.Decode()
				}
			}
		}
	})
}

// FuzzDecodeCallback: any body and content type either decode into a
// callback with data and sign, or fail with an error; a callback signed with
// the secret always verifies.
func FuzzDecodeCallback(f *testing.F) {
	data := string(vendordocs.MustExample("megvii_get_result_ok_000.json"))
	cb := Callback{Data: data, Sign: Sign("s", data)}
	types := []string{"application/x-www-form-urlencoded", "application/json", "", "text/json; charset=utf-8", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded;;"}
	f.Add(uint8(0), cb.EncodeForm())
	f.Add(uint8(1), cb.EncodeJSON())
	f.Add(uint8(2), []byte(`{"data":{"a":1},"sign":"x"}`))
	f.Add(uint8(4), []byte("--"))
	secrets := []config.Secret{config.NewSecret("s")}
	f.Fuzz(func(t *testing.T, ctIdx uint8, body []byte) {
		got, err := DecodeCallback(types[int(ctIdx)%len(types)], body)
		if err != nil {
			return
		}
		if got.Data == "" || got.Sign == "" {
			t.Fatalf("decoded without data or sign: %+v", got)
		}
		_, _ = VerifySignature(got, secrets)
		_, _ = got.ParseData()
		resigned := Callback{Data: got.Data, Sign: Sign("s", got.Data)}
		if _, err := VerifySignature(resigned, secrets); err != nil {
			t.Fatal("a correctly signed callback did not verify")
		}
	})
}

// FuzzSummarize: the single-pass scanner accepts exactly what encoding/json
// accepts as one object, and finds the same status and biz_info.
func FuzzSummarize(f *testing.F) {
	seedBodies(f)
	f.Add([]byte(`{"status":"OK","biz_info":{"biz_id":"a\u00e9\"b"}}`))
	f.Add([]byte(` {} `))
	f.Add([]byte(`{"a":[1,-0.5e+3,true,false,null,{"b":"\\"}]}`))
	f.Add([]byte(`{"a":01}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, serr := topLevel(b)
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal(b, &obj)
		if (serr == nil) != (jerr == nil && obj != nil) {
			t.Fatalf("scanner err %v, encoding/json err %v, for %q", serr, jerr, b)
		}
		got, err := summarize(b)
		var want Summary
		werr := json.Unmarshal(b, &want)
		if (err == nil) != (werr == nil && obj != nil) {
			t.Fatalf("summarize err %v, encoding/json err %v, for %q", err, werr, b)
		}
		// Keys are matched case-insensitively like encoding/json; for non-ASCII
		// keys the two case foldings may differ in corners no vendor uses.
		if err == nil && isASCII(b) && (want.Status != got.Status || want.BizInfo != got.BizInfo) {
			t.Fatalf("got %+v want %+v", got, want)
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
