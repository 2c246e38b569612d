package megvii

import (
	"encoding/json"
	"os"
	"strings"
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
	f.Add([]byte(`{"biz_info":{"biz_id":"a","biz_no":"x"},"BIZ_INFO":{"biz_id":"b"},"biz_info":null,"status":"OK","Status":"FAILED"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, serr := topLevel(b)
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal(b, &obj)
		if (serr == nil) != (jerr == nil && obj != nil) {
			t.Fatalf("scanner err %v, encoding/json err %v, for %q", serr, jerr, b)
		}
		got, _, err := summarizeAnswer(b)
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

// FuzzFindImages: FindImages agrees with encoding/json on whether the body is
// one object, and on the images' string members (differential).
func FuzzFindImages(f *testing.F) {
	seedBodies(f)
	f.Add([]byte(`{"images":{"image_best":"data:image/jpeg;base64,QUJD","image_x":null,"n":1},"status":"OK"}`))
	f.Add([]byte(`{"images":{"a":"x\"y\u00e9"},"IMAGES":{"b":"z"}}`))
	f.Add([]byte(`{"images":[1]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		start, end, got, err := FindImages(b)
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal(b, &obj)
		if (err == nil) != (jerr == nil && obj != nil) {
			t.Fatalf("FindImages err %v, encoding/json err %v, for %q", err, jerr, b)
		}
		if err != nil || !isASCII(b) {
			return
		}
		var want struct {
			Images lastWins `json:"images"`
		}
		if json.Unmarshal(b, &want) != nil || end == 0 {
			return // images is not an object: FindImages returns no members
		}
		if !json.Valid(b[start:end]) {
			t.Fatalf("range %d-%d is not a JSON value", start, end)
		}
		strs := map[string]string{}
		for k, v := range want.Images {
			var s string
			if json.Unmarshal(v, &s) == nil && v[0] == '"' {
				strs[k] = s
			}
		}
		seen := map[string]string{}
		for _, e := range got {
			var lit string
			if json.Unmarshal(b[e.Start:e.End], &lit) != nil || lit != e.Value {
				t.Fatalf("%s: range %d-%d holds %q, not its value", e.Name, e.Start, e.End, b[e.Start:e.End])
			}
			seen[e.Name] = e.Value // the last duplicate wins, as in encoding/json
		}
		if len(seen) != len(strs) {
			t.Fatalf("got %v want %v for %q", seen, strs, b)
		}
		for k, v := range strs {
			if seen[k] != v {
				t.Fatalf("%s: got %q want %q", k, seen[k], v)
			}
		}
	})
}

// lastWins decodes an object replacing, not merging into, what a duplicate
// key decoded before: what Images does, and what FindImages promises.
type lastWins map[string]json.RawMessage

func (l *lastWins) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*l = m
	return nil
}

func TestFindImages(t *testing.T) {
	for _, c := range []struct {
		body  string
		names string
		err   bool
	}{
		{`{"status":"OK","images":{"image_best":"data:image/jpeg;base64,QUJD","image_idcard_front":null,"n":1}}`, "image_best", false},
		{`{"status":"OK"}`, "", false},
		{`{"images":"nope"}`, "", false},
		{`{"images":{"a":"x\"y"}}`, "a", false},
		{`{"images":{"a":"x"}`, "", true},
		{`[]`, "", true},
	} {
		start, end, got, err := FindImages([]byte(c.body))
		var names []string
		for _, e := range got {
			names = append(names, e.Name)
		}
		if (err != nil) != c.err || strings.Join(names, ",") != c.names {
			t.Errorf("%s: %v %v %d-%d", c.body, names, err, start, end)
		}
		if err == nil && end > 0 && !json.Valid([]byte(c.body[start:end])) {
			t.Errorf("%s: range %d-%d", c.body, start, end)
		}
	}
	_, _, got, _ := FindImages([]byte(`{"images":{"a":"x\"y\u00e9"}}`))
	if len(got) != 1 || got[0].Value != "x\"yé" {
		t.Errorf("escapes: %+v", got)
	}
}
