// Package scheduletest has what the tests of pkg/schedule and its users
// share.
package scheduletest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// RandomState returns a state that may be frozen, with times in UTC, the
// local zone and fixed offsets, optional fields present or not: the
// frozen-state codec's tests in pkg/schedule and pkg/harvester draw from it.
func RandomState(r *rand.Rand, i int) *schedule.State {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 8*3600), time.FixedZone("CST", -6*3600)}
	at := func() time.Time {
		return time.Unix(1_700_000_000+r.Int64N(1e8), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	}
	v := contract.Megvii
	if r.IntN(2) == 0 {
		v = contract.Baidu
	}
	st := &schedule.State{Vendor: v, ID: fmt.Sprintf("%d,%08x-ä", i, r.Uint32()), FirstSeen: at(), NextAt: at(),
		Failures: r.IntN(3), Spent: r.IntN(2), Attempts: r.IntN(300), LastWindowLeft: r.Float64() * 1e5}
	if r.IntN(2) == 0 {
		st.BizNo = fmt.Sprintf("order-%d", r.IntN(1e6))
	}
	if r.IntN(2) == 0 {
		st.Owner = fmt.Sprintf("%016x", r.Uint64())
	}
	if r.IntN(2) == 0 {
		t := at()
		st.IssuedAt = &t
	}
	if r.IntN(3) == 0 {
		t := at()
		st.CompletedAt = &t
		st.FlowStatus = "OK"
	}
	if r.IntN(10) == 0 {
		st.FirstSeen = time.Time{}
	}
	if v == contract.Megvii && r.IntN(2) == 0 {
		st.Procedure = []string{"video", "still", "selfie", "flash"}[r.IntN(4)]
	}
	if v == contract.Baidu {
		st.Unregistered = r.IntN(3) == 0
		st.Landing = []string{"", schedule.LandingSuccess, schedule.LandingFailure}[r.IntN(3)]
	}
	return st
}
