// Package clock provides the time source everything in faceharvest takes by
// injection. Windows and deadlines are the heart of the product, so no
// package calls time.Now directly: production passes Real, tests and the
// simulator pass a Sim.
package clock

import (
	"sync"
	"time"
)

// Now returns the current time.
type Now func() time.Time

// Real is the wall clock.
func Real() time.Time { return time.Now() }

// Sim is a controllable clock: it runs at Scale times real speed from a base
// (Scale 0 freezes it, so that only Set and Advance move it) and can be set or
// advanced at any moment. It is safe for concurrent use.
type Sim struct {
	mu       sync.Mutex
	real     Now
	base     time.Time // simulated time at realBase
	realBase time.Time
	scale    float64
}

// NewSim returns a clock reading start now and running at scale times real
// speed, measured with real (time.Now when nil).
func NewSim(start time.Time, scale float64, real Now) *Sim {
	if real == nil {
		real = Real
	}
	return &Sim{real: real, base: start, realBase: real(), scale: scale}
}

// Now returns the simulated time.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Sim) nowLocked() time.Time {
	if s.scale == 0 {
		return s.base
	}
	elapsed := s.real().Sub(s.realBase)
	return s.base.Add(time.Duration(float64(elapsed) * s.scale))
}

// Set jumps to t; the clock keeps its speed from there.
func (s *Sim) Set(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.realBase = t, s.real()
}

// Advance moves the clock forward by d and returns the new time.
func (s *Sim) Advance(d time.Duration) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.nowLocked().Add(d)
	s.base, s.realBase = t, s.real()
	return t
}

// SetScale changes the speed without moving the clock.
func (s *Sim) SetScale(scale float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.realBase = s.nowLocked(), s.real()
	s.scale = scale
}

// Scale returns the current speed.
func (s *Sim) Scale() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scale
}
