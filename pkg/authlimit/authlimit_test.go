package authlimit

import (
	"net/netip"
	"testing"
	"time"
)

// TestFailuresBounded: the addresses tracked stay bounded whatever the
// number of guessing addresses; beyond the bound they share one bucket;
// IPv6 addresses count by /64.
func TestFailuresBounded(t *testing.T) {
	now := time.Unix(0, 0)
	fl := New(func() time.Time { return now }, 2, time.Second, 100)
	for i := range 1000 {
		fl.Fail(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String())
	}
	if n := fl.Tracked(); n > 101 {
		t.Fatalf("%d addresses tracked, want at most 101", n)
	}
	fl.Fail("2001:db8::1")
	fl.Fail("2001:db8::2")
	if fl.Blocked("2001:db8::ffff") == 0 {
		t.Error("another address of the same /64 is not limited")
	}
	now = now.Add(time.Hour)
	fl.Fail("192.0.2.1")
	if n := fl.Tracked(); n != 1 {
		t.Errorf("%d addresses tracked after all refilled, want 1", n)
	}
}
