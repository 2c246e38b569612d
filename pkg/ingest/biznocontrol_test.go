package ingest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBizNoControlCharactersRefused: a biz_no holding a control character
// (a newline that would forge a line in the operator command's output, an
// escape sequence for a terminal) is refused 400 at every entry point
// that takes one from a caller: the token API and the Baidu issuing route
// (the Megvii one takes printable ASCII only already).
func TestBizNoControlCharactersRefused(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	auth := map[string]string{"Authorization": "Bearer " + bearer}
	for _, bad := range []string{"loan-1\nverification\tmegvii:forged", "loan-1\x1b[2J", "loan\x00", "loan\u0085x", "loan\u2028x"} {
		r := f.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"megvii","verification_id":"m1","biz_no":`+jsonString(bad)+`}`), auth)
		if r.code != http.StatusBadRequest || !strings.Contains(r.raw, "biz_no") {
			t.Errorf("POST /v1/tokens biz_no %q: %d %s, want 400", bad, r.code, r.raw)
		}
		r = f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": "1", "biz_no": bad})
		if r.code != http.StatusBadRequest || !strings.Contains(r.raw, "biz_no") {
			t.Errorf("POST /v1/baidu/tokens biz_no %q: %d %s, want 400", bad, r.code, r.raw)
		}
	}
	if r := f.do(t, "POST", RouteTokens, "application/json", []byte(`{"vendor":"megvii","verification_id":"m1","biz_no":"贷款-1 (second try)"}`), auth); r.code != 202 {
		t.Errorf("a biz_no with CJK and spaces: %d %s", r.code, r.raw)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
