package schedule

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/baidu"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/vendorerr"
)

// Next and Decide change nothing of the state they are given: the media
// window's closing comes as the action's update, a result's effect as the
// decision's state.
func TestNextAndDecideArePure(t *testing.T) {
	p := Defaults()
	p.TokenInvalidRun = nil
	s := build(p, e(token(contract.Baidu, 0)), e(completion("success", 0)))
	p.Outcome(s, Result{Endpoint: baidu.EndpointGetAll, Recorded: true, ResponseID: "r1", Attempts: 1, AnyPassed: true}, at(25*time.Hour), nil)
	before, _ := json.Marshal(s)
	a := p.Next(s, at(25*time.Hour))
	if a.Update == nil || !slices.Contains(a.Update.Done, baidu.EndpointMedia) || !strings.Contains(a.Update.LastError, "media window") {
		t.Fatalf("media window closed: update %+v", a.Update)
	}
	for _, r := range []Result{{Endpoint: baidu.EndpointDetail, Recorded: true, ResponseID: "r2"}, {Endpoint: baidu.EndpointDetail, Class: vendorerr.VendorFault, Message: "HTTP 500"},
		{Endpoint: baidu.EndpointDetail, Class: vendorerr.Destroyed}, {Endpoint: baidu.EndpointDetail, Class: vendorerr.NotVerified}, {Endpoint: baidu.EndpointDetail, Class: vendorerr.RateLimited, Code: "18"},
		{Endpoint: baidu.EndpointDetail, Class: vendorerr.Account, Message: "unauthorized"}, {Endpoint: baidu.EndpointDetail, Class: vendorerr.NotFound}} {
		d := p.Decide(s, r, at(25*time.Hour), p.Jitter)
		if after, _ := json.Marshal(d.State); string(after) == string(before) && r.Class != vendorerr.NotFound {
			t.Errorf("%v: the decision changes nothing", r.Class)
		}
	}
	if after, _ := json.Marshal(s); string(after) != string(before) {
		t.Fatalf("Next or Decide changed the state:\n%s\n%s", before, after)
	}
}
