package harvester

import (
	"context"
	"time"
)

// housekeeping is the state of the engine's periodic chores, guarded by
// Engine.mu: the sweep of closed markers past ClosedRetention (at most one
// at a time, once a minute of the engine's clock), and the wall time the
// gauges last walked the due heaps.
type housekeeping struct {
	sweeping  bool
	lastSweep time.Time
	dueWalked time.Time
}

// sweepDueLocked starts a sweep of the closed markers older than
// ClosedRetention when none runs and the last began a minute ago or more.
func (e *Engine) sweepDueLocked(now time.Time) {
	if e.hk.sweeping || now.Sub(e.hk.lastSweep) < time.Minute {
		return
	}
	e.hk.sweeping, e.hk.lastSweep = true, now
	var old []string
	for k, c := range e.closed {
		if now.Sub(c.at) > e.cfg.ClosedRetention {
			old = append(old, k)
		}
	}
	e.wg.Add(1)
	go e.sweep(old)
}

// sweep deletes the closed markers of keys (a tombstone each), stopping at
// the first failed write: the next sweep tries again.
func (e *Engine) sweep(keys []string) {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		e.hk.sweeping = false
		e.mu.Unlock()
	}()
	for _, k := range keys {
		e.mu.Lock()
		c, ok := e.closed[k]
		e.mu.Unlock()
		if !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), stateWriteTimeout)
		err := e.cfg.Store.Save(ctx, c.part, k, nil)
		cancel()
		if err != nil {
			return
		}
		e.mu.Lock()
		if cur, ok := e.closed[k]; ok && cur == c {
			delete(e.closed, k)
		}
		e.mu.Unlock()
		e.m.markersDeleted.Inc()
	}
}

// gaugesLocked sets the per-vendor gauges from the book, the queue and the
// limiters.
func (e *Engine) gaugesLocked() {
	// Counting the due work near its deadline walks the due heaps: at most
	// once a second (wall time) while they are large.
	now, walk := e.now(), time.Since(e.hk.dueWalked) >= time.Second
	if walk {
		e.hk.dueWalked = time.Now()
	}
	for v, l := range e.lim {
		e.m.pending.WithLabelValues(string(v)).Set(float64(e.pending[v]))
		e.m.due.WithLabelValues(string(v)).Set(float64(e.q.dueLen(v)))
		// The earliest deadline among due verifications waiting for a slot,
		// and how many close within the hour (not in FIFO order, where the
		// due heap is ordered by arrival).
		if d := e.q.due[v]; d.Len() == 0 || e.q.fifo {
			e.m.dueDeadline.DeleteLabelValues(string(v))
			e.m.dueWithinHour.WithLabelValues(string(v)).Set(0)
		} else {
			e.m.dueDeadline.WithLabelValues(string(v)).Set(float64(d.items[0].deadline / int64(time.Second)))
			if walk || d.Len() <= 1024 {
				n, horizon := 0, now.Add(time.Hour).UnixNano()
				for _, it := range d.items {
					if it.deadline <= horizon {
						n++
					}
				}
				e.m.dueWithinHour.WithLabelValues(string(v)).Set(float64(n))
			}
		}
		lim, _, paused := l.state(now)
		e.m.limit.WithLabelValues(string(v)).Set(lim)
		p := 0.0
		if paused {
			p = 1
		}
		e.m.paused.WithLabelValues(string(v)).Set(p)
	}
}
