package schedule_test

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/schedule/scheduletest"
)

// TestFreezeThawKeepsTheState: a thawed state encodes to exactly the JSON
// the state topic had, and its times are the same instants.
func TestFreezeThawKeepsTheState(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		st := scheduletest.RandomState(r, i)
		if !schedule.CanFreeze(st) {
			t.Fatalf("state %d may not be frozen: %+v", i, st)
		}
		cold := schedule.Freeze(st)
		got, err := schedule.Thaw(st.Key(), cold)
		if err != nil {
			t.Fatalf("state %d: %v", i, err)
		}
		want, _ := json.Marshal(st)
		have, _ := json.Marshal(got)
		if string(want) != string(have) {
			t.Fatalf("state %d:\n want %s\n have %s", i, want, have)
		}
		if !got.NextAt.Equal(st.NextAt) || !got.FirstSeen.Equal(st.FirstSeen) || (st.IssuedAt != nil) != (got.IssuedAt != nil) ||
			(st.IssuedAt != nil && !got.IssuedAt.Equal(*st.IssuedAt)) {
			t.Fatalf("state %d: times differ", i)
		}
		if len(cold) > 120 { // 100, and the owner's 16-character caller hash
			t.Fatalf("state %d packs into %d bytes", i, len(cold))
		}
		// A cut-short or extended packing is refused, never misread.
		for _, bad := range []string{cold[:len(cold)-1], cold[:len(cold)/2], cold + "x"} {
			if _, err := schedule.Thaw(st.Key(), bad); err == nil {
				t.Fatalf("state %d: a damaged packing thawed", i)
			}
		}
	}
}
