package megvii

import (
	"encoding/json"
	"errors"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// bigCallback is a signed callback whose data (the document's example with
// a long biz_extra_data, quotes and non-ASCII text in it) makes a body of
// about 64 KiB, the callback routes' limit.
func bigCallback(t testing.TB) Callback {
	t.Helper()
	var res map[string]any
	if err := json.Unmarshal(vendordocs.MustExample("megvii_get_result_ok_000.json"), &res); err != nil {
		t.Fatal(err)
	}
	res["biz_info"].(map[string]any)["biz_extra_data"] = strings.Repeat(`order "x" 订单 & more; `, 1100)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return Callback{Data: string(b), Sign: Sign("s", string(b))}
}

// decodeBytes is the bytes DecodeCallback allocates per call, averaged.
func decodeBytes(t *testing.T, ct string, body []byte, want string) uint64 {
	t.Helper()
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		cb, err := DecodeCallback(ct, body)
		if err != nil || cb.Data != want {
			t.Fatalf("%s: %v", ct, err)
		}
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

// TestDecodeCallbackCopiesOnce: decoding a 64 KiB callback, form-encoded
// or JSON, allocates its data once (the one copy a caller that reuses the
// body needs) and little else.
func TestDecodeCallbackCopiesOnce(t *testing.T) {
	cb := bigCallback(t)
	for _, c := range []struct {
		ct   string
		body []byte
	}{
		{"application/x-www-form-urlencoded", cb.EncodeForm()},
		{"", cb.EncodeForm()},
		{"application/json", cb.EncodeJSON()},
		{"", cb.EncodeJSON()},
	} {
		got := decodeBytes(t, c.ct, c.body, cb.Data)
		t.Logf("%q: body %d bytes, data %d bytes, %d bytes allocated a decode", c.ct, len(c.body), len(cb.Data), got)
		// A large object takes whole 8 KiB pages.
		if limit := uint64(len(cb.Data)+8<<10-1)/(8<<10)*(8<<10) + 1<<10; got > limit {
			t.Errorf("%q: a %d-byte body allocated %d bytes a decode, want one copy of its %d bytes of data (whole pages, +1 KiB)", c.ct, len(c.body), got, len(cb.Data))
		}
	}
}

// BenchmarkDecodeCallback decodes a 64 KiB callback, form-encoded and JSON.
func BenchmarkDecodeCallback(b *testing.B) {
	cb := bigCallback(b)
	for name, c := range map[string]struct {
		ct   string
		body []byte
	}{"form": {"application/x-www-form-urlencoded", cb.EncodeForm()}, "json": {"application/json", cb.EncodeJSON()}} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCallback(c.ct, c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// decodeCallbackStd is DecodeCallback as written with the standard library
// (url.ParseQuery, json.Unmarshal): the reference the one-copy decoder must
// agree with.
func decodeCallbackStd(mt string, body []byte) (Callback, error) {
	var cb Callback
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return Callback{}, err
		}
		cb = Callback{Data: v.Get("data"), Sign: v.Get("sign"), Format: FormatForm}
	default:
		var v struct {
			Data json.RawMessage `json:"data"`
			Sign string          `json:"sign"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return Callback{}, err
		}
		cb = Callback{Sign: v.Sign, Format: FormatJSON}
		if len(v.Data) > 0 && v.Data[0] == '"' {
			if err := json.Unmarshal(v.Data, &cb.Data); err != nil {
				return Callback{}, err
			}
		} else if len(v.Data) > 0 && v.Data[0] == '{' {
			cb.Data = string(v.Data)
		}
	}
	if cb.Data == "" || cb.Sign == "" {
		return Callback{}, errors.New("missing data or sign")
	}
	return cb, nil
}

// FuzzDecodeCallbackLikeStd: the one-copy decoder accepts exactly what the
// standard library accepts, and finds the same data and sign, for form and
// JSON bodies.
func FuzzDecodeCallbackLikeStd(f *testing.F) {
	cb := Callback{Data: string(vendordocs.MustExample("megvii_get_result_ok_000.json")), Sign: "abc"}
	for _, b := range [][]byte{cb.EncodeForm(), cb.EncodeJSON(), []byte(`data=a%2&sign=b`), []byte(`data=a;b&sign=c`), []byte(`sign=x&data=%7B%7D&data=y`),
		[]byte(`DATA=a&Sign=b`), []byte(`d%61ta=a+b&sign=c`), []byte(`{"data":"\ud83d\ude00\ud800x\u00e9\"","sign":"s","SIGN":null}`),
		[]byte(`{"Data":{"a":1},"sign":"s","data":null}`), []byte(`{"data":"x","sign":1}`), []byte("{\"data\":\"\xff\",\"sign\":\"s\"}")} {
		f.Add(false, b)
		f.Add(true, b)
	}
	f.Fuzz(func(t *testing.T, isJSON bool, body []byte) {
		mt := "application/x-www-form-urlencoded"
		if isJSON {
			mt = "application/json"
		}
		got, err := DecodeCallback(mt, body)
		want, werr := decodeCallbackStd(mt, body)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%s %q: error %v, the standard library's %v", mt, body, err, werr)
		}
		if err == nil && (got.Data != want.Data || got.Sign != want.Sign || got.Format != want.Format) {
			t.Fatalf("%s %q: got %+v, the standard library %+v", mt, body, got, want)
		}
	})
}
