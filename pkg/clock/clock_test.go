package clock

import (
	"testing"
	"time"
)

type fakeReal struct{ t time.Time }

func (f *fakeReal) now() time.Time { return f.t }

func TestSim(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &fakeReal{t: time.Unix(1000, 0)}
	cases := []struct {
		name  string
		step  func(s *Sim)
		wantD time.Duration // expected offset from start after step
	}{
		{"frozen by scale 0 ignores real time", func(s *Sim) { s.SetScale(0); r.t = r.t.Add(time.Hour) }, 0},
		{"advance", func(s *Sim) { s.Advance(90 * time.Minute) }, 90 * time.Minute},
		{"scale 60 turns a real second into a minute", func(s *Sim) { s.SetScale(60); r.t = r.t.Add(time.Second) }, 91 * time.Minute},
		{"set", func(s *Sim) { s.Set(start.Add(24 * time.Hour)) }, 24 * time.Hour},
		{"keeps speed after set", func(s *Sim) { r.t = r.t.Add(2 * time.Second) }, 24*time.Hour + 2*time.Minute},
	}
	s := NewSim(start, 1, r.now)
	for _, c := range cases {
		c.step(s)
		if got := s.Now().Sub(start); got != c.wantD {
			t.Fatalf("%s: offset %s, want %s", c.name, got, c.wantD)
		}
	}
	if s.Scale() != 60 {
		t.Fatalf("scale %v", s.Scale())
	}
}
