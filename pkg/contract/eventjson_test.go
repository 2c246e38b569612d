package contract

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// reflected is Event without its MarshalJSON: what encoding/json makes of
// the struct.
type reflected Event

func checkEventJSON(t *testing.T, e Event) {
	t.Helper()
	want, werr := json.Marshal(reflected(e))
	got, err := e.MarshalJSON()
	if (err != nil) != (werr != nil) || string(got) != string(want) {
		t.Fatalf("MarshalJSON:\n got  %s (%v)\n want %s (%v)", got, err, want, werr)
	}
	if err != nil {
		return
	}
	if !json.Valid(got) {
		t.Fatalf("invalid JSON %s", got)
	}
	// Read back, it is what encoding/json reads from the struct's own form.
	var back Event
	var plain reflected
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &plain); err != nil || !reflect.DeepEqual(back, Event(plain)) {
		t.Fatalf("read back %+v, want %+v (%v)", back, plain, err)
	}
	if dataObject(e.Data) && !json.Valid([]byte(e.Data)) {
		return // AppendJSONDataObject's caller vouches for data it would embed
	}
	obj, err := e.AppendJSONDataObject([]byte("x"))
	if err != nil || obj[0] != 'x' || !json.Valid(obj[1:]) {
		t.Fatalf("AppendJSONDataObject: %s (%v)", obj, err)
	}
	if !dataObject(e.Data) && string(obj[1:]) != string(got) {
		t.Fatalf("AppendJSONDataObject wrote %s, want the string form %s", obj[1:], got)
	}
	var backObj Event
	if err := json.Unmarshal(obj[1:], &backObj); err != nil {
		t.Fatal(err)
	}
	if dataObject(e.Data) {
		if backObj.Data != e.Data {
			t.Fatalf("data read back as %q, want %q exactly", backObj.Data, e.Data)
		}
		backObj.Data = back.Data
	}
	if !reflect.DeepEqual(backObj, back) {
		t.Fatalf("object form read back %+v, string form %+v", backObj, back)
	}
}

// TestEventDataForms: an event written with its data as an object reads
// back to the same bytes, whitespace, escapes and all; data that is not an
// object is written as a string; either form is read; other data is refused.
func TestEventDataForms(t *testing.T) {
	at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	doc := string(vendordocs.MustExample("megvii_get_result_ok_000.json"))
	for _, data := range []string{doc, strings.TrimSpace(doc), `{"a":"\u00e9\"<&>","b":[1, 2 ,{}]}`, `{}`, ` {"a":1}`, `{"a":1}` + "\n", "[1]", `"s"`, "{\"a\":\"\xff\"}"} {
		e := Event{Vendor: Megvii, VerificationID: "1,a", ReceivedAt: at, Status: "OK", Data: data}
		checkEventJSON(t, e)
		obj, _ := e.AppendJSONDataObject(nil)
		embedded := strings.Contains(string(obj), `"data":`+data)
		if embedded != (data != "" && data[0] == '{' && data[len(data)-1] == '}' && utf8.ValidString(data)) {
			t.Fatalf("%.30q: embedded %v", data, embedded)
		}
	}
	for _, bad := range []string{`{"vendor":"megvii","data":5}`, `{"vendor":"megvii","data":[1]}`, `{"vendor":"megvii","data":true}`} {
		var e Event
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
}

// TestJSONStringEveryByte holds AppendJSONString to encoding/json for every
// byte value, and every lead byte with each kind of continuation, at every
// offset of the eight-byte word and in the unaligned tail.
func TestJSONStringEveryByte(t *testing.T) {
	var cases []string
	for c := range 256 {
		for _, seq := range [][]byte{{byte(c)}, {byte(c), 0x80, 0x80}, {byte(c), 0xA0, 0x80}, {byte(c), 0xBF, 0xBF}, {byte(c), 0x9F}, {byte(c), 0x90, 0x80, 0x80}, {byte(c), 0x80, 'x'}} {
			for pad := range 10 {
				cases = append(cases, strings.Repeat("a", pad)+string(seq)+strings.Repeat("b", 10-pad))
				cases = append(cases, strings.Repeat("é", pad)+string(seq))
			}
		}
	}
	cases = append(cases, "", "\u2028\u2029", "中文字符<&>\"", "\xed\xa0\x80", "\xe0\x80\x80", "\xef\xbf\xbd", strings.Repeat("\"", 100), strings.Repeat("\x01", 100))
	for _, s := range cases {
		want, _ := json.Marshal(s)
		for _, pre := range []string{"", "xyz"} {
			if got := AppendJSONString([]byte(pre), s); string(got) != pre+string(want) {
				t.Fatalf("%q: got %q, want %q", s, got, want)
			}
		}
	}
}

func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.UTC)
	issued := at.Add(-time.Hour).In(time.FixedZone("", 8*3600))
	for _, e := range []Event{
		{Vendor: Megvii, VerificationID: "1,a", ReceivedAt: at},
		{Vendor: Megvii, VerificationID: "1,a", BizNo: "订单<&>", IssuedAt: &issued, ReceivedAt: at, Status: "OK",
			Data: string(vendordocs.MustExample("megvii_get_result_ok_000.json")), Sign: "ac041f49940c5afb2640a251633a8029ae69c1d5", SignedBy: "sha256:0a1b2c3d",
			Metadata: map[string]string{"z": "1", "a": "\u2028\x00\x7f"}},
		{Vendor: Baidu, VerificationID: "tok", ReceivedAt: at, Data: "bad \xff\xfe utf-8 \t\n\r\b\f\"\\"},
		{Vendor: Baidu, VerificationID: "tok", ReceivedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Vendor: Baidu, VerificationID: "tok", ReceivedAt: at.In(time.FixedZone("", 25*3600))},
	} {
		checkEventJSON(t, e)
	}
}

func FuzzEventJSON(f *testing.F) {
	f.Add("1,a", "order", "OK", `{"a":"<b>"}`, "k", "v", int64(1_700_000_000), int64(5), 0, true)
	f.Add("\xff", "\u2029", "", "\x01\"\\", "", "", int64(-62_135_596_900), int64(0), 3600*30, false)
	f.Fuzz(func(t *testing.T, id, bizNo, status, data, mk, mv string, sec, nsec int64, off int, issued bool) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", off))
		e := Event{Vendor: Megvii, VerificationID: id, BizNo: bizNo, ReceivedAt: at, Status: status, Data: data, Sign: mv, SignedBy: mk}
		if issued {
			e.IssuedAt = &at
		}
		if mk != "" {
			e.Metadata = map[string]string{mk: mv, "x" + mk: data}
		}
		checkEventJSON(t, e)
	})
}
