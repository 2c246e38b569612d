package schedule

import (
	"reflect"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

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
