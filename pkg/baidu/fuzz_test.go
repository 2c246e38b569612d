package baidu

import (
	"encoding/json"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/vendordocs"
)

// FuzzDecode: any answer is classified or decoded into every typed result
// without a panic.
func FuzzDecode(f *testing.F) {
	for _, n := range vendordocs.Names() {
		f.Add(200, vendordocs.MustExample(n))
	}
	f.Add(502, []byte("<html>bad gateway</html>"))
	f.Add(200, []byte(`{"error_code":"110","error_msg":"x"}`))
	f.Add(200, []byte(`{"success":true,"result":{"verify_result":[{"idcard_confirm":{"idcard_ocr_result":[]}}]}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		env, e := Classify(EndpointGetAll, status, body)
		if (env == nil) == (e == nil) {
			t.Fatal("exactly one of envelope and error must be set")
		}
		if e != nil {
			_ = e.Error()
			return
		}
		var (
			g GetAllResult
			d DetailResult
			m MediaResult
			s StatResult
		)
		if json.Unmarshal(env.Result, &g) == nil {
			_ = g.Passed()
			for _, a := range g.VerifyResult {
				_, _ = ParseTime(a.VerifyTime)
			}
		}
		_ = json.Unmarshal(env.Result, &d)
		if json.Unmarshal(env.Result, &m) == nil {
			_ = m.URLs()
		}
		_ = json.Unmarshal(env.Result, &s)
	})
}
