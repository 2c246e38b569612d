package megvii

import (
	"encoding/json"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// BenchmarkParseResult decodes the document's full example into the typed
// view; BenchmarkParseResultBaseline decodes the same bytes into a generic
// map, the least a consumer could do. Their ratio is the cost of typing.
func BenchmarkParseResult(b *testing.B) {
	body := vendordocs.MustExample("megvii_get_result_ok_000.json")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseResult(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResultBaseline(b *testing.B) {
	body := vendordocs.MustExample("megvii_get_result_ok_000.json")
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySignature checks a callback against three rotated secrets.
func BenchmarkVerifySignature(b *testing.B) {
	data := string(vendordocs.MustExample("megvii_get_result_ok_000.json"))
	secrets := secretsOf("old-1", "old-2", "current")
	cb := Callback{Data: data, Sign: Sign("current", data)}
	for b.Loop() {
		if _, err := VerifySignature(cb, secrets); err != nil {
			b.Fatal(err)
		}
	}
}
