// Package retry is faceharvest's one way to try an operation again: a
// doubling back-off between a minimum and a maximum, optional jitter, and a
// wait that tests inject so that they advance time instead of sleeping.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is the wait between tries: Min before the second try, doubling
// up to Max. Jitter spreads each wait over [d/2, d] so that many callers
// failing together do not retry together.
type Backoff struct {
	Min, Max time.Duration
	Jitter   bool
}

// Delay is the wait after the try-th failure (try counts from 1).
func (b Backoff) Delay(try int) time.Duration {
	d := b.Min << min(max(try-1, 0), 30)
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	if b.Jitter && d > 1 {
		d = d/2 + rand.N(d/2+1)
	}
	return d
}

// Wait pauses for d or until ctx ends, returning ctx's error then. Sleep is
// the real one; tests inject one that records the waits and returns at once.
type Wait func(ctx context.Context, d time.Duration) error

// Sleep waits on a real timer.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Policy is a Backoff, the wait it uses (Sleep when nil), and an optional
// observer told of every failure before the wait: where callers count,
// log (rate-limited) and mark themselves unhealthy.
type Policy struct {
	Backoff
	Wait      Wait
	OnFailure func(try int, err error, next time.Duration)
}

// permanent marks an error that no further try can mend.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Do returns it at once instead of trying again.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do calls fn until it returns nil, returns an error marked Permanent
// (returned unwrapped), or ctx ends (ctx's error is returned, joined with
// fn's last error). try counts from 1.
func Do(ctx context.Context, p Policy, fn func(try int) error) error {
	wait := p.Wait
	if wait == nil {
		wait = Sleep
	}
	for try := 1; ; try++ {
		err := fn(try)
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		next := p.Delay(try)
		if p.OnFailure != nil {
			p.OnFailure(try, err, next)
		}
		if werr := wait(ctx, next); werr != nil {
			return errors.Join(werr, err)
		}
	}
}
