package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/contract/schematest"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Document 000 (images): 以jpg编码并用base64字符串返回,或返回为null — an
// image is a base64 string or null; the data URI prefix is only how the
// examples show it. Plain base64 is stored with its sniffed content type and
// leaves the evidence document as a reference, like a data URI does.
func TestMegviiPlainBase64Images(t *testing.T) {
	schema := schematest.Compile(t)
	store := objstore.NewMemory()
	best, front := testJPEG(t, 3), testPNG(t)
	b64 := base64.StdEncoding.EncodeToString
	body := mustJSON(t, map[string]any{"request_id": "r", "time_used": 10, "status": "OK",
		"biz_info": map[string]any{"biz_id": "m-plain", "biz_no": "loan-8"},
		"images": map[string]any{
			"image_best":         b64(best),                        // plain base64, no prefix
			"image_idcard_front": "\n" + b64(front) + "\n",         // plain base64 of a PNG: sniffed, no declaration to contradict
			"image_idcard_back":  b64([]byte("<html>nope</html>")), // plain base64 of a page: not an image
			"image_selfie_side":  "%%%not base64%%%",
		}})
	a := newTest(t, store, nil)
	rec := archive(t, a, terminal(contract.Megvii, "m-plain", contract.OutcomeHarvested), response(contract.Megvii, "m-plain", "get_result", body))
	schematest.Validate(t, schema, mustJSON(t, rec))
	got := map[string]contract.MediaRef{}
	for _, m := range rec.Media {
		got[m.Kind] = m
	}
	sum := sha256.Sum256(best)
	if m := got["image_best"]; m.Status != contract.MediaStored || m.ContentType != "image/jpeg" || m.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("plain base64 JPEG: %+v", m)
	}
	if m := got["idcard_front"]; m.Status != contract.MediaStored || m.ContentType != "image/png" {
		t.Errorf("plain base64 PNG: %+v", m)
	}
	if m := got["idcard_back"]; m.Status != contract.MediaRejected || !strings.Contains(m.Reason, "not an image") {
		t.Errorf("plain base64 page: %+v", m)
	}
	if m := got["selfie_side"]; m.Status != contract.MediaRejected || !strings.Contains(m.Reason, "base64") {
		t.Errorf("not base64: %+v", m)
	}
	rc, err := store.Get(context.Background(), rec.Evidence.Key)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := io.ReadAll(rc)
	if strings.Contains(string(ev), b64(best)) || strings.Contains(string(ev), b64(front)) {
		t.Errorf("a stored image's base64 stayed inline in the evidence document")
	}
}
