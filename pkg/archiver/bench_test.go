package archiver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// BenchmarkArchiveMegvii is the archiver's own CPU per Megvii answer with
// three 100 KB images, against the in-memory store (the store's cost is
// measured by bench/archiver against MinIO).
func BenchmarkArchiveMegvii(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	imgs := map[string]any{}
	for _, n := range []string{"image_best", "image_idcard_front", "image_idcard_back"} {
		img := make([]byte, 100<<10)
		for i := range img {
			img[i] = byte(r.Uint32())
		}
		copy(img, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
		imgs[n] = "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(img)
	}
	body := mustJSON(b, map[string]any{"status": "OK", "biz_info": map[string]any{"biz_id": "m"}, "images": imgs,
		"liveness_result": map[string]any{"result": "PASS", "procedure_type": "video"}})
	a := newTest(b, objstore.NewMemory(), nil)
	resp := response(contract.Megvii, "m", "get_result", body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := a.ArchiveResponse(context.Background(), "id", resp); err != nil {
			b.Fatal(err)
		}
		a.take("id")
	}
}

// BenchmarkArchiveMegviiCallback is the archiver's CPU per signed Megvii
// callback (document 000's result, no images, as callbacks carry).
func BenchmarkArchiveMegviiCallback(b *testing.B) {
	var m map[string]any
	if err := json.Unmarshal(vendordocs.MustExample("megvii_get_result_ok_000.json"), &m); err != nil {
		b.Fatal(err)
	}
	m["status"], m["biz_info"] = "OK", map[string]any{"biz_id": "m-cb"}
	delete(m, "images")
	data := string(mustJSON(b, m))
	a := newTest(b, objstore.NewMemory(), nil)
	r := response(contract.Megvii, "m-cb", contract.EndpointCallback, []byte(data))
	r.Sign, r.SignedBy = "sign", "sha256:0a1b2c3d"
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.ArchiveResponse(context.Background(), "cb", r); err != nil {
			b.Fatal(err)
		}
		a.take("cb")
	}
}
