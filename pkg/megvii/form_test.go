package megvii

import (
	"net/url"
	"strings"
	"testing"
)

var formCases = []string{
	"data=%7B%22a%22%3A1%7D&sign=abc",
	"sign=abc&data=x+y%2Bz",
	"data=1&data=2&sign=s&sign=t",
	"data=%zz&data=ok&sign=s",
	"data=ok&other=%zz&sign=s",
	"data=ok;sign=s",
	"&&data=ok&&sign=s&",
	"da%74a=ok&si%67n=s",
	"data=%E4%B8%AD&sign=%",
	"data=%41x%&sign=s",
	"data=%41%&sign=%4",
	"data=%%&sign=s",
	"data&sign",
	"data=a=b&sign==",
	"%=x&data=1&sign=2",
	"",
	strings.Repeat("a=1&", maxFormFields) + "data=1&sign=2",
	strings.Repeat("a=1&", maxFormFields-2) + "data=1&sign=2",
}

// TestFormFieldsAgreesWithParseQuery checks formFields against
// url.ParseQuery on the cases its shortcuts could get wrong.
func TestFormFieldsAgreesWithParseQuery(t *testing.T) {
	for _, body := range formCases {
		checkFormFields(t, body)
	}
}

func checkFormFields(t *testing.T, body string) {
	t.Helper()
	data, sign, err := formFields(body)
	v, werr := url.ParseQuery(body)
	if (err != nil) != (werr != nil) {
		t.Fatalf("%.80q: error %v, url.ParseQuery %v", body, err, werr)
	}
	if err == nil && (data != v.Get("data") || sign != v.Get("sign")) {
		t.Fatalf("%.80q: data %q sign %q, url.ParseQuery %q %q", body, data, sign, v.Get("data"), v.Get("sign"))
	}
}

func FuzzFormFields(f *testing.F) {
	for _, c := range formCases[:len(formCases)-2] {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, body string) { checkFormFields(t, body) })
}

func BenchmarkFormFields(b *testing.B) {
	data := string(largeCallbackData())
	body := "data=" + url.QueryEscape(data) + "&sign=" + Sign("s", data)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, err := formFields(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormFieldsBaseline(b *testing.B) {
	data := string(largeCallbackData())
	body := "data=" + url.QueryEscape(data) + "&sign=" + Sign("s", data)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := url.ParseQuery(body); err != nil {
			b.Fatal(err)
		}
	}
}
