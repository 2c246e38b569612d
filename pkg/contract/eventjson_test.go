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

// checkDataObject: AppendJSONDataObject keeps what b held and writes valid
// JSON that reads back as encoding/json's own encoding of the event does;
// data that is not an object is written exactly as encoding/json writes the
// event, data that is one reads back byte for byte.
func checkDataObject(t *testing.T, e Event) {
	t.Helper()
	want, werr := json.Marshal(e)
	obj, err := e.AppendJSONDataObject([]byte("x"))
	if (err != nil) != (werr != nil) {
		t.Fatalf("AppendJSONDataObject error %v, encoding/json %v", err, werr)
	}
	if err != nil {
		return
	}
	if obj[0] != 'x' || !json.Valid(obj[1:]) {
		t.Fatalf("AppendJSONDataObject: %s", obj)
	}
	if !dataObject(e.Data) && string(obj[1:]) != string(want) {
		t.Fatalf("AppendJSONDataObject wrote %s, want encoding/json's %s", obj[1:], want)
	}
	var back, plain Event
	if err := json.Unmarshal(want, &plain); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(obj[1:], &back); err != nil {
		t.Fatal(err)
	}
	if dataObject(e.Data) {
		if back.Data != e.Data {
			t.Fatalf("data read back as %q, want %q exactly", back.Data, e.Data)
		}
		back.Data = plain.Data
	}
	if !reflect.DeepEqual(back, plain) {
		t.Fatalf("object form read back %+v, string form %+v", back, plain)
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
		checkDataObject(t, e)
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

// TestEventDataObjectEveryField: every field, escapes, invalid UTF-8 and
// times encoding/json refuses, in both forms.
func TestEventDataObjectEveryField(t *testing.T) {
	at := time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.UTC)
	issued := at.Add(-time.Hour).In(time.FixedZone("", 8*3600))
	doc := strings.TrimSpace(string(vendordocs.MustExample("megvii_get_result_ok_000.json")))
	for _, e := range []Event{
		{Vendor: Megvii, VerificationID: "1,a", ReceivedAt: at},
		{Vendor: Megvii, VerificationID: "1,a", BizNo: "订单<&>", IssuedAt: &issued, ReceivedAt: at, Status: "OK",
			Data: doc, Sign: "ac041f49940c5afb2640a251633a8029ae69c1d5", SignedBy: "sha256:0a1b2c3d",
			Metadata: map[string]string{"z": "1", "a": "\u2028\x00\x7f"}},
		{Vendor: Baidu, VerificationID: "tok", ReceivedAt: at, Data: "bad \xff\xfe utf-8 \t\n\r\b\f\"\\"},
		{Vendor: Baidu, VerificationID: "tok", ReceivedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Data: doc},
		{Vendor: Baidu, VerificationID: "tok", ReceivedAt: at.In(time.FixedZone("", 25*3600))},
	} {
		checkDataObject(t, e)
	}
}
