package archiver

import (
	"context"
	"encoding/base64"
	"math/rand/v2"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
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
