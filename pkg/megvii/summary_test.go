package megvii

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/config"
	"github.com/faceharvest/faceharvest/pkg/vendordocs"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// GetResultSummary and GetResult agree on every answer: the same status and
// raw body on success, the same class and code on failure.
func TestGetResultSummaryAgreesWithGetResult(t *testing.T) {
	quirks, _ := os.ReadFile("testdata/quirks.json")
	answers := []struct {
		name   string
		status int
		body   string
	}{
		{"document 000", 200, string(vendordocs.MustExample("megvii_get_result_ok_000.json"))},
		{"document 002", 200, string(vendordocs.MustExample("megvii_get_result_ok_002.json"))},
		{"quirks", 200, string(quirks)},
		{"destroyed", 403, `{"error_message":"DATA_DESTROYED","request_id":"r"}`},
		{"error with 200", 200, `{"error_message":"BIZ_ID_NOT_FOUND: x","request_id":"r"}`},
		{"limited", 403, `{"error_message":"CONCURRENCY_LIMIT_EXCEEDED","request_id":"r"}`},
		{"cut in half", 200, `{"status":"OK","images":{"image_best":"data:image/jp`},
		{"HTML gateway", 502, `<html><body>502 Bad Gateway</body></html>`},
		{"status a number", 200, `{"status":7,"biz_info":{"biz_id":"b"}}`},
		{"unknown status", 200, `{"status":"MAYBE","biz_info":{"biz_id":"b"}}`},
		{"empty object", 200, `{}`},
		{"array", 200, `[]`},
	}
	var cur int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(answers[cur].status)
		_, _ = w.Write([]byte(answers[cur].body))
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, APIKey: config.NewSecret("k"), APISecret: config.NewSecret("s")})
	if err != nil {
		t.Fatal(err)
	}
	opts := GetResultOptions{ReturnImage: ReturnImageAll, ReturnVerifyTime: true}
	for i, a := range answers {
		cur = i
		full, ferr := c.GetResult(context.Background(), "b", opts)
		sum, raw, serr := c.GetResultSummary(context.Background(), "b", opts)
		if (ferr == nil) != (serr == nil) {
			t.Errorf("%s: GetResult %v, GetResultSummary %v", a.name, ferr, serr)
			continue
		}
		if ferr != nil {
			fe, se := ferr.(*vendorerr.Error), serr.(*vendorerr.Error)
			if fe.Class != se.Class || fe.Code != se.Code || fe.HTTPStatus != se.HTTPStatus {
				t.Errorf("%s: %+v vs %+v", a.name, fe, se)
			}
			continue
		}
		if sum.Status != full.Status || sum.BizInfo.BizID != full.BizInfo.BizID || string(raw) != a.body {
			t.Errorf("%s: summary %+v, full status %q", a.name, sum, full.Status)
		}
	}
}
