package megvii

import (
	"encoding/json"
	"testing"
)

// TestBilledByEveryComparisonScore: 000 §6 bills a result that carries a
// comparison confidence (返回值(verify_result或result_ref参数)有比对分数
// (confidence值)的情况); result_idcard_photo and result_idcard_datasource
// are comparison scores of verify_result as much as result_faceid and
// result_refN are.
func TestBilledByEveryComparisonScore(t *testing.T) {
	score := `{"confidence": 68.918, "thresholds": {"1e-3": 64, "1e-4": 69, "1e-5": 74, "1e-6": 79.9}}`
	for _, c := range []struct {
		body string
		want bool
	}{
		{`{"error_message": null, "result_idcard_photo": ` + score + `}`, true},
		{`{"error_message": null, "result_idcard_datasource": ` + score + `}`, true},
		{`{"error_message": null, "result_faceid": ` + score + `}`, true},
		{`{"error_message": null, "result_ref1": ` + score + `}`, true},
		{`{"error_message": "DATA_SOURCE_ERROR"}`, false},
		{`{"error_message": null, "result_idcard_photo": {"thresholds": {}}}`, false},
	} {
		var v VerifyResult
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatal(err)
		}
		if got := v.Billed(); got != c.want {
			t.Errorf("%s: billed %v, want %v", c.body, got, c.want)
		}
	}
}
