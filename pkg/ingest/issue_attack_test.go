package ingest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/vendorsim"
)

// TestIdempotencyKeyScopedByCaller: an Idempotency-Key belongs to the
// bearer token that used it. Another caller choosing the same key (an
// order number both happen to use) gets its own issuing, never the first
// caller's token, and never a 422 for a body it did not send.
func TestIdempotencyKeyScopedByCaller(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	body := map[string]any{"biz_no": "order-1"}
	mine := f.issue(t, RouteMegviiTokens, "order-1", body)
	if mine.code != 200 {
		t.Fatalf("first caller: %d %s", mine.code, mine.raw)
	}
	b, _ := json.Marshal(body)
	other := func(body []byte) resp {
		return f.do(t, "POST", RouteMegviiTokens, "application/json", body, map[string]string{"Authorization": "Bearer other-token", IdempotencyKeyHeader: "order-1"})
	}
	theirs := other(b)
	if theirs.code != 200 || theirs.header.Get("Idempotent-Replayed") != "" || theirs.body["token"] == mine.body["token"] {
		t.Fatalf("another caller with the same key: %d %s (replayed %q); the first caller's answer %s", theirs.code, theirs.raw, theirs.header.Get("Idempotent-Replayed"), mine.raw)
	}
	if n := v.getTokens(); n != 2 {
		t.Fatalf("%d get_token calls, want one per caller", n)
	}
	// The other caller's own retry replays its own answer.
	if again := other(b); again.code != 200 || again.raw != theirs.raw {
		t.Fatalf("the other caller's retry: %d %s", again.code, again.raw)
	}
	// A third body under the first caller's key is still that caller's 422.
	if r := f.issue(t, RouteMegviiTokens, "order-1", map[string]any{"biz_no": "order-2"}); r.code != 422 {
		t.Fatalf("the first caller, another body: %d %s", r.code, r.raw)
	}
}

// TestIssueLogsHoldNoSecret: through successes, vendor refusals and bad
// input, neither the vendors' secrets, the bearer token nor a customer's
// ID number reaches ingest's logs or answers.
func TestIssueLogsHoldNoSecret(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	var answers strings.Builder
	add := func(r resp) { answers.WriteString(r.raw) }
	add(f.issue(t, RouteMegviiTokens, "k1", map[string]any{"biz_no": "b-1", "idcard_name": "张三", "idcard_number": "500000199001013390", "idcard_mode": 1}))
	add(f.issue(t, RouteBaiduTokens, "k2", map[string]any{"plan_id": "1", "id_name": "张三", "id_no": "500000199001013390"}))
	for _, fault := range []struct{ vendor, fault string }{{"megvii", vendorsim.FaultInternal}, {"megvii", vendorsim.FaultAuthorization}, {"baidu", vendorsim.FaultInternal}, {"baidu", vendorsim.FaultMalformed}} {
		if err := v.sim.QueueFault(fault.vendor, fault.fault, 1); err != nil {
			t.Fatal(err)
		}
		if fault.vendor == "megvii" {
			add(f.issue(t, RouteMegviiTokens, "", map[string]any{"biz_no": "b-2", "idcard_number": "500000199001013390"}))
		} else {
			add(f.issue(t, RouteBaiduTokens, "", map[string]any{"plan_id": "1", "id_name": "张三", "id_no": "500000199001013390"}))
		}
	}
	add(f.do(t, "POST", RouteBaiduTokens, "application/json", []byte(`{"plan_id":"1","id_no":500000199001013390}`), map[string]string{"Authorization": "Bearer " + bearer}))
	add(f.do(t, "POST", RouteBaiduTokens, "application/json", []byte(`{"plan_id":{"x":"500000199001013390"}}`), map[string]string{"Authorization": "Bearer " + bearer}))
	add(f.do(t, "POST", RouteMegviiTokens, "application/json", []byte(`{"biz_no":"b","comparison_type":"500000199001013390"}`), map[string]string{"Authorization": "Bearer " + bearer}))
	logs := f.logs.String()
	if logs == "" {
		t.Fatal("no logs to check")
	}
	for _, secret := range []string{secretNew, bearer, "500000199001013390", "access_token=", "api_secret="} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold %q", secret)
		}
		if strings.Contains(answers.String(), secret) {
			t.Errorf("an answer holds %q", secret)
		}
	}
}

// TestCustomerPageURLs: a customer page (return_url, success_url,
// failure_url) is an absolute https URL, or http on loopback; every
// spelling a browser could read as another scheme or host is refused.
func TestCustomerPageURLs(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://customer.example/kyc/done?order=1#top":         true,
		"HTTPS://customer.example/":                             true,
		"http://127.0.0.1:3000/done":                            true,
		"http://[::1]/done":                                     true,
		"http://localhost/done":                                 true,
		"https://xn--80ak6aa92e.example/":                       true,
		"javascript:alert(1)":                                   false,
		"javascript://customer.example/%0aalert(1)":             false,
		"data:text/html,<script>alert(1)</script>":              false,
		"//evil.example/":                                       false,
		"/relative":                                             false,
		"https:evil.example":                                    false,
		"https:/evil.example":                                   false,
		"https:///evil.example":                                 false,
		"https://user:pw@customer.example/":                     false,
		"https://customer.example@evil.example/":                false,
		`https://customer.example\@evil.example/`:               false,
		`https:\\evil.example/`:                                 false,
		"https://customer.example/\tx":                          false,
		" https://customer.example/":                            false,
		"http://customer.example/":                              false,
		"http://localhost.evil.example/":                        false,
		"http://127.0.0.1.nip.io/":                              false,
		"ftp://customer.example/":                               false,
		"https://customer.example/" + strings.Repeat("a", 2048): false,
	} {
		if err := checkPage("return_url", u); (err == nil) != ok {
			t.Errorf("%.80q: error %v, want accepted %v", u, err, ok)
		}
	}
}

// TestIssueErrorsBounded: an error naming a field the caller sent quotes
// at most a short prefix of its name, in the answer and in the log.
func TestIssueErrorsBounded(t *testing.T) {
	v := newSimVendors(t)
	f := newFixture(t, v.issuing(t, &memLog{}))
	long := strings.Repeat("x", 20000)
	r := f.do(t, "POST", RouteMegviiTokens, "application/json", []byte(`{"biz_no":"b","`+long+`":1}`), map[string]string{"Authorization": "Bearer " + bearer})
	if r.code != 400 || len(r.raw) > 500 || !strings.Contains(r.raw, "unknown field") {
		t.Fatalf("%d, %d bytes: %.200s", r.code, len(r.raw), r.raw)
	}
	if strings.Contains(f.logs.String(), strings.Repeat("x", 200)) {
		t.Fatal("the log holds the long field name")
	}
}
