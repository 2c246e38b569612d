package megvii

import (
	"encoding/base64"
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

// largeAnswer is a get_result answer with three images of about 100 KB
// each, the size the pipeline benchmark moves.
func largeAnswer() []byte {
	var m map[string]any
	if err := json.Unmarshal(vendordocs.MustExample("megvii_get_result_ok_000.json"), &m); err != nil {
		panic(err)
	}
	img := make([]byte, 100_000)
	for i := range img {
		img[i] = byte(i * 7)
	}
	enc := "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(img)
	m["images"] = map[string]any{ImageBest: enc, ImageIDCardFront: enc, ImageIDCardBack: enc}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// BenchmarkFindImagesLarge locates the images of a 400 KB answer in one
// pass (the archiver's work per answer); BenchmarkFindImagesLargeBaseline
// decodes the same bytes into a generic map.
func BenchmarkFindImagesLarge(b *testing.B) {
	body := largeAnswer()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, imgs, err := FindImages(body); err != nil || len(imgs) != 3 {
			b.Fatal(err, len(imgs))
		}
	}
}

func BenchmarkFindImagesLargeBaseline(b *testing.B) {
	body := largeAnswer()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatal(err)
		}
	}
}
