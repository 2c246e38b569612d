package schedule

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// randomState returns a state that may be frozen, with times in UTC, the
// local zone and fixed offsets, optional fields present or not.
func randomState(r *rand.Rand, i int) *State {
	zones := []*time.Location{time.UTC, time.Local, time.FixedZone("", 8*3600), time.FixedZone("CST", -6*3600)}
	at := func() time.Time {
		return time.Unix(1_700_000_000+r.Int64N(1e8), r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
	}
	v := contract.Megvii
	if r.IntN(2) == 0 {
		v = contract.Baidu
	}
	st := &State{Vendor: v, ID: fmt.Sprintf("%d,%08x-ä", i, r.Uint32()), FirstSeen: at(), NextAt: at(),
		Failures: r.IntN(3), Spent: r.IntN(2), Attempts: r.IntN(300), LastWindowLeft: r.Float64() * 1e5}
	if r.IntN(2) == 0 {
		st.BizNo = fmt.Sprintf("order-%d", r.IntN(1e6))
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
		st.Landing = []string{"", LandingSuccess, LandingFailure}[r.IntN(3)]
	}
	return st
}

// TestFreezeThawKeepsTheState: a thawed state encodes to exactly the JSON
// the state topic had, and its times are the same instants.
func TestFreezeThawKeepsTheState(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 20000 {
		st := randomState(r, i)
		if !CanFreeze(st) {
			t.Fatalf("state %d may not be frozen: %+v", i, st)
		}
		cold := Freeze(st)
		got, err := Thaw(st.Key(), cold)
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
		if len(cold) > 100 {
			t.Fatalf("state %d packs into %d bytes", i, len(cold))
		}
		// A cut-short or extended packing is refused, never misread.
		for _, bad := range []string{cold[:len(cold)-1], cold[:len(cold)/2], cold + "x"} {
			if _, err := Thaw(st.Key(), bad); err == nil {
				t.Fatalf("state %d: a damaged packing thawed", i)
			}
		}
	}
}

// TestTypicalStatePacksSmall: a registered token waiting for its last
// chance, the bulk of what a harvester holds, packs into 48 bytes at most.
func TestTypicalStatePacksSmall(t *testing.T) {
	issued := time.Now().Add(-time.Hour)
	st := Defaults().Apply(nil, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii,
		VerificationID: "1700000000,52b13fb5-8dfb-4537-a62b-a641d5e929f1", BizNo: "order-123456", IssuedAt: &issued, ReceivedAt: time.Now()})
	if !CanFreeze(st) {
		t.Fatal("not freezable")
	}
	if n := len(Freeze(st)); n > 48 {
		t.Fatalf("packs into %d bytes", n)
	}
}

// TestOnlyWaitingStatesFreeze: states carrying an intent, a decision,
// responses, finished endpoints or an error stay whole.
func TestOnlyWaitingStatesFreeze(t *testing.T) {
	now := time.Now()
	for name, edit := range map[string]func(*State){
		"intent": func(s *State) { s.Intent = &Intent{Attempt: 1, At: now} },
		"closing": func(s *State) {
			s.Closing = &Closing{Outcome: contract.OutcomeHarvested, DecidedAt: now}
		},
		"responses":     func(s *State) { s.Responses = []string{"r"} },
		"done":          func(s *State) { s.Done = []string{"getall"} },
		"last error":    func(s *State) { s.LastError = "x" },
		"polls":         func(s *State) { s.Polls = 1 },
		"error 18":      func(s *State) { s.QPSLimitedSince = &now },
		"token invalid": func(s *State) { s.TokenInvalid = 1 },
		"year 2500":     func(s *State) { s.NextAt = time.Date(2500, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		st := &State{Vendor: contract.Megvii, ID: "b", FirstSeen: now, NextAt: now}
		edit(st)
		if CanFreeze(st) {
			t.Errorf("%s: frozen", name)
		}
	}
}

// TestFrozenCodecCoversEveryField: every field of State is either packed
// (a state with it set round-trips) or required to be zero (a state with it
// set does not freeze). A field added to State without either fails here.
func TestFrozenCodecCoversEveryField(t *testing.T) {
	listed := map[string]string{}
	for _, f := range frozenPacked {
		listed[f] = "packed"
	}
	for _, f := range frozenZero {
		if listed[f] != "" {
			t.Fatalf("%s is listed twice", f)
		}
		listed[f] = "zero"
	}
	typ := reflect.TypeFor[State]()
	for i := range typ.NumField() {
		if listed[typ.Field(i).Name] == "" {
			t.Errorf("State.%s is neither packed by Freeze nor refused by CanFreeze: add it to frozenPacked (and pack it) or to frozenZero (and check it)", typ.Field(i).Name)
		}
	}
	if len(listed) != typ.NumField() {
		t.Errorf("the lists name %d fields, State has %d", len(listed), typ.NumField())
	}
	base := func() *State {
		at := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
		return &State{Vendor: contract.Baidu, ID: "v-1", FirstSeen: at, NextAt: at.Add(time.Hour)}
	}
	for name, how := range listed {
		st := base()
		f := reflect.ValueOf(st).Elem().FieldByName(name)
		setNonZero(t, name, f)
		if how == "zero" {
			if CanFreeze(st) {
				t.Errorf("State.%s is set, and the state still freezes: it would be lost", name)
			}
			continue
		}
		if name == "Landing" {
			st.Landing = LandingFailure // the only values a frozen state may hold
		}
		if !CanFreeze(st) {
			t.Errorf("State.%s set: the state does not freeze", name)
			continue
		}
		got, err := Thaw(st.Key(), Freeze(st))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(reflect.ValueOf(got).Elem().FieldByName(name).Interface(), f.Interface()) {
			t.Errorf("State.%s = %v does not survive freezing: %v", name, f.Interface(), reflect.ValueOf(got).Elem().FieldByName(name).Interface())
		}
	}
}

// setNonZero gives f a value other than its zero.
func setNonZero(t *testing.T, name string, f reflect.Value) {
	t.Helper()
	at := time.Date(2026, 7, 1, 10, 30, 0, 0, time.UTC)
	switch v := f.Addr().Interface().(type) {
	case *contract.Vendor:
		*v = contract.Megvii
	case *string:
		*v = name + "-value"
	case *bool:
		*v = true
	case *int:
		*v = 7
	case *float64:
		*v = 12.5
	case *time.Time:
		*v = at
	case **time.Time:
		*v = &at
	case *[]int:
		*v = []int{1}
	case *[]string:
		*v = []string{"x"}
	case **Intent:
		*v = &Intent{Attempt: 1, At: at}
	case **Closing:
		*v = &Closing{Outcome: contract.OutcomeHarvested, DecidedAt: at}
	default:
		t.Fatalf("State.%s: a %s; teach setNonZero its non-zero value", name, f.Type())
	}
}
