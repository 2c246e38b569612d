package harvester

import (
	"context"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// dispatchEvery is how often Run dispatches without being woken: items
// become due as the clock moves, which wakes nobody.
const dispatchEvery = 20 * time.Millisecond

// realTicks is Run's ticker.
func realTicks() (<-chan time.Time, func()) {
	t := time.NewTicker(dispatchEvery)
	return t.C, t.Stop
}

// poke wakes Run: an item may have become due, or a slot free.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run dispatches due work on every tick and every poke until ctx ends,
// then waits for the work in flight and the state writes.
func (e *Engine) Run(ctx context.Context) error {
	tick, stop := e.ticks()
	defer stop()
	for {
		e.dispatch(ctx)
		select {
		case <-ctx.Done():
			e.wg.Wait()
			return nil
		case <-tick:
		case <-e.wake:
		}
	}
}

// dispatch is one step of the dispatcher, at the clock's now: it promotes
// the items that became due, starts as much work as the vendors' limits
// allow, earliest deadline first, starts a sweep when one is due, and sets
// the gauges. It returns how many jobs it started. Run calls it
// on every tick and wake-up; tests call it to advance the engine one step.
func (e *Engine) dispatch(ctx context.Context) int {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	started, uncalled := 0, 0
	e.q.promote(now, func(it *item) {
		// Due only to be discarded: no vendor slot (a registration
		// arriving meanwhile makes the job take one).
		if ps := e.parts[int(it.part)]; ps != nil && !ps.revoked {
			e.startLocked(ctx, it, e.lim[it.vendor()], false)
			started++
		}
	}, func(*item) { uncalled++ })
	if uncalled > 0 {
		e.log.Warn("verifications of a vendor this harvester has no caller for came due: kept, not called", "count", uncalled)
	}
	for v, l := range e.lim {
		started += e.startDueLocked(ctx, v, l, now)
	}
	e.sweepDueLocked(now)
	e.gaugesLocked()
	return started
}

// startDueLocked starts v's due items while its limiter gives slots, and
// drops those of revoked partitions; it returns how many it started.
func (e *Engine) startDueLocked(ctx context.Context, v contract.Vendor, l *limiter, now time.Time) int {
	n := 0
	for it := e.q.head(v); it != nil; it = e.q.head(v) {
		if ps := e.parts[int(it.part)]; ps == nil || ps.revoked {
			e.q.pop(v)
			continue
		}
		if !e.callsLocked(it, now) {
			// Closed, discarded or re-planned without a call: no slot,
			// so the verifications that need a call do not wait for it.
			e.startLocked(ctx, e.q.pop(v), l, false)
			n++
			continue
		}
		if !l.acquire(now) {
			break
		}
		e.startLocked(ctx, e.q.pop(v), l, true)
		n++
	}
	return n
}

// callsLocked reports whether the item's next step may call the vendor: an
// intent to resolve may, and so does a plan with calls; a close, a discard
// or an empty plan does not (a job that finds a call to make after all
// takes a slot then, or waits for one).
func (e *Engine) callsLocked(it *item, now time.Time) bool {
	st := it.stateLocked()
	if st == nil || st.Intent != nil {
		return true
	}
	plan := e.pol.Next(st, now) // the job applies its update
	return plan.Close == nil && !plan.Discard && len(plan.Calls) > 0
}

// startLocked starts a job on an item taken out of the queue; held says
// whether a vendor slot was taken for it.
func (e *Engine) startLocked(ctx context.Context, it *item, l *limiter, held bool) {
	it.stateLocked() // a busy item is never frozen
	it.busy = true
	e.parts[int(it.part)].busy++
	e.wg.Add(1)
	go e.work(ctx, it, l, held)
}

// dueCount is how many items wait for a slot, plus one when a waiting item
// has become due (tests: whether a step has work left).
func (e *Engine) dueCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for v := range e.lim {
		n += e.q.dueLen(v)
	}
	if t, ok := e.q.nextWake(); ok && !t.After(e.now()) {
		n++
	}
	return n
}

// busyCount is how many items have a job.
func (e *Engine) busyCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, p := range e.parts {
		n += p.busy
	}
	return n
}
