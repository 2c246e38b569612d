package schedule

import (
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// TestReRegistrationKeepsTheFirst: a later registration never moves
// issued_at earlier (which would close the verification expired before
// its window) nor replaces biz_no.
func TestReRegistrationKeepsTheFirst(t *testing.T) {
	p := Defaults()
	typ, first := token(contract.Megvii, 0)
	first.BizNo = "A-1"
	_, again := token(contract.Megvii, -7*24*time.Hour)
	again.BizNo = "B-1"
	again.ReceivedAt = at(time.Hour)
	s := build(p, e(typ, first), e(typ, again))
	if !s.IssuedAt.Equal(at(0)) || s.BizNo != "A-1" {
		t.Fatalf("after a backdated re-registration: issued_at %s, biz_no %q; want %s and A-1", s.IssuedAt, s.BizNo, at(0))
	}
}

// TestForeignRegistrationIgnored: another caller's registration or
// landing changes nothing; the owner's re-registration is merged.
func TestForeignRegistrationIgnored(t *testing.T) {
	p := Defaults()
	typ, first := token(contract.Baidu, 0)
	first.Caller, first.BizNo = "caller-a", "A-1"
	s := build(p, e(typ, first))
	before := *s
	_, foreign := token(contract.Baidu, -24*time.Hour)
	foreign.Caller, foreign.BizNo = "caller-b", "B-1"
	typL, landing := completion(LandingSuccess, time.Minute)
	landing.Caller = "caller-b"
	for _, x := range []ev{e(typ, foreign), e(typL, landing)} {
		if !s.Foreign(x.typ, x.e) {
			t.Errorf("%s by caller-b is not foreign", x.typ)
		}
		s = p.Apply(s, x.typ, x.e)
		if s.Owner != "caller-a" || s.BizNo != "A-1" || !s.IssuedAt.Equal(*before.IssuedAt) || s.CompletedAt != nil || s.Landing != "" || !s.NextAt.Equal(before.NextAt) {
			t.Fatalf("after caller-b's %s: %+v", x.typ, s)
		}
	}
	landing.Caller = "caller-a"
	if s = p.Apply(s, typL, landing); s.Landing != LandingSuccess || s.CompletedAt == nil {
		t.Fatalf("the owner's landing was not merged: %+v", s)
	}
}
