package harvester

import (
	"testing"
	"time"
)

func TestLimiterAIMD(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(8, 0, now)
	n := 0
	for l.acquire(now) {
		n++
	}
	if n != 8 {
		t.Fatalf("acquired %d of 8", n)
	}
	l.release(now, true, 0) // halve
	l.release(now, true, 0) // same round trip: no second cut
	if lim, _, _ := l.state(now); lim != 4 {
		t.Fatalf("limit %v after a rate-limit answer", lim)
	}
	now = now.Add(2 * time.Second)
	l.release(now, true, 0)
	if lim, _, _ := l.state(now); lim != 2 {
		t.Fatalf("limit %v", lim)
	}
	for i := 0; i < 5; i++ {
		l.release(now, false, 0)
	}
	lim, inflight, _ := l.state(now)
	if inflight != 0 || lim <= 2 || lim > 4.5 {
		t.Fatalf("after successes: limit %v inflight %d", lim, inflight)
	}
	for i := 0; i < 1000; i++ {
		if l.acquire(now) {
			l.release(now, false, 0)
		}
	}
	if lim, _, _ := l.state(now); lim != 8 {
		t.Fatalf("limit does not recover to the maximum: %v", lim)
	}
}

func TestLimiterQPSAndPause(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(100, 2, now)
	got := 0
	for i := 0; i < 5; i++ {
		if l.acquire(now) {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("%d calls in the first instant at 2 QPS", got)
	}
	now = now.Add(time.Second)
	if !l.acquire(now) {
		t.Fatal("no token after a second")
	}
	l.pause(now.Add(time.Minute))
	now = now.Add(10 * time.Second)
	if l.acquire(now) {
		t.Fatal("acquired while paused")
	}
	if _, _, paused := l.state(now); !paused {
		t.Fatal("not paused")
	}
	if !l.acquire(now.Add(time.Minute)) {
		t.Fatal("still paused after the pause")
	}
}
