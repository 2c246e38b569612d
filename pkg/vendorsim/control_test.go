package vendorsim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, u, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 && b[0] == '{' {
		_ = json.Unmarshal(b, &m)
	} else {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

func TestControlAPI(t *testing.T) {
	h := newHarness(t, nil)
	c := h.controlURL
	code, m := post(t, c+"/sim/megvii/verifications", `{"biz_no":"o-1","final_after":"10m","procedure":"still"}`)
	if code != 201 || m["biz_no"] != "o-1" {
		t.Fatalf("create megvii: %d %v", code, m)
	}
	id := m["biz_id"].(string)
	resp, err := http.Post(c+"/sim/baidu/verifications?count=3", "application/json", strings.NewReader(`{"complete_after":90}`))
	if err != nil {
		t.Fatal(err)
	}
	var created []BaiduCreated
	_ = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || len(created) != 3 || created[0].VerifyToken == created[1].VerifyToken {
		t.Fatalf("create baidu x3: %d %+v", resp.StatusCode, created)
	}
	bad := []struct{ path, body, want string }{
		{"/sim/megvii/verifications", `{"biz_no":"x","color":"red"}`, "unknown field"},
		{"/sim/megvii/verifications", `{"final_status":"DONE"}`, "not a FaceID Lite status"},
		{"/sim/megvii/verifications", `{"faults":["meteor"]}`, "unknown fault"},
		{"/sim/baidu/verifications", `{"outcome":"maybe"}`, "want success or failure"},
		{"/sim/baidu/verifications?count=0", `{}`, "count must be"},
		{"/sim/clock", `{"advance":"-1h"}`, "does not go back"},
		{"/sim/clock", `{"scale":-2}`, "must not be negative"},
		{"/sim/faults", `{"vendor":"acme","kind":"reset","count":1}`, "unknown vendor"},
		{"/sim/megvii/verifications/nope/faults", `{"kinds":["reset"]}`, "no megvii verification"},
	}
	for _, b := range bad {
		code, m := post(t, c+b.path, b.body)
		if code != 400 || !strings.Contains(m["error"].(string), b.want) {
			t.Errorf("%s %s: %d %v", b.path, b.body, code, m)
		}
	}
	code, m = post(t, c+"/sim/clock", `{"advance":"11m"}`)
	if code != 200 || m["now"] != t0.Add(11*time.Minute).Format(time.RFC3339) {
		t.Fatalf("clock: %v", m)
	}
	if code, m = post(t, c+"/sim/dispatch", `{}`); code != 200 || m["delivered"].(float64) != 4 {
		t.Fatalf("dispatch: %v", m)
	}
	if code, _ = post(t, c+"/sim/megvii/verifications/"+id+"/faults", `{"kinds":["internal"]}`); code != 200 {
		t.Fatal("queue fault")
	}
	resp, err = http.Get(c + "/sim/megvii/verifications/" + id)
	if err != nil {
		t.Fatal(err)
	}
	var st VerificationState
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Status != "OK" || !st.CallbackDelivered || st.BizNo != "o-1" {
		t.Fatalf("state %+v", st)
	}
	resp, _ = http.Get(c + "/sim/stats")
	var stats Stats
	_ = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if stats.MegviiVerifications != 1 || stats.BaiduVerifications != 3 || stats.PendingDeliveries != 0 {
		t.Fatalf("stats %+v", stats)
	}
	resp, _ = http.Get(c + "/sim/verifications")
	var states []VerificationState
	_ = json.NewDecoder(resp.Body).Decode(&states)
	resp.Body.Close()
	if len(states) != 4 || states[0].Vendor != "megvii" {
		t.Fatalf("states %d", len(states))
	}
	if resp, _ := http.Get(c + "/sim/baidu/verifications/none"); resp.StatusCode != 404 {
		t.Fatalf("unknown verification: %d", resp.StatusCode)
	}
}
