package harvester

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// The evidence-index check of an event for a verification the engine does
// not know (no open item, no closed marker: never seen, or closed longer
// ago than ClosedRetention). A verification the index holds is archived:
// its event is acknowledged and counted, and nothing is scheduled, so a
// replayed callback or registration never calls the vendor again.
//
// When the store does not answer, the event is applied unchecked after
// indexCheckWait of retries: a verification wrongly taken for new costs a
// vendor call whose answer the archiver keeps beside the first record
// (which stays final), while an event held back for as long as the store is
// down delays every event of its partition, and a harvest missed is
// evidence lost for good. For indexDownFor after a failed check, events are
// applied unchecked at once, so that an outage does not slow the partitions
// to one event per indexCheckWait.
const (
	indexCheckWait = 10 * time.Second
	indexDownFor   = time.Minute
	indexLogEvery  = time.Minute
)

// indexCheck is the check's state, shared by the partitions' consumers.
type indexCheck struct {
	mu        sync.Mutex
	downUntil time.Time // after a failed check: apply unchecked until then
	lastLog   map[string]time.Time
	unlogged  map[string]int
}

// known reports whether the engine holds key: an open verification or a
// closed marker.
func (e *Engine) known(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.closed[key]; ok {
		return true
	}
	it := e.items[key]
	return it != nil && it.hasState()
}

// archived reports whether ev's verification, unknown to the engine, is in
// the evidence index, counting and logging (at most once a minute) the
// events so ignored. ok is false when ctx ended first: the event is not
// acknowledged.
func (e *Engine) archived(ctx context.Context, ev contract.Event) (archived, ok bool) {
	key := contract.Key(ev.Vendor, ev.VerificationID)
	if e.cfg.Answers == nil || e.known(key) {
		return false, true
	}
	now := e.now()
	e.ix.mu.Lock()
	down := now.Before(e.ix.downUntil)
	e.ix.mu.Unlock()
	if down {
		e.m.indexCheckFailures.WithLabelValues(string(ev.Vendor)).Inc()
		return false, true
	}
	indexKey := archiver.IndexKey(ev.Vendor, ev.VerificationID)
	cctx, cancel := context.WithTimeout(ctx, indexCheckWait)
	defer cancel()
	var found bool
	var last error
	err := retry.Do(cctx, retry.Policy{Backoff: retry.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}, Wait: e.wait}, func(int) error {
		_, err := e.cfg.Answers.Attributes(cctx, indexKey)
		switch {
		case err == nil:
			found = true
		case errors.Is(err, objstore.ErrNotFound):
		default:
			last = err
			return err
		}
		return nil
	})
	switch {
	case err == nil && found:
		e.m.alreadyArchived.WithLabelValues(string(ev.Vendor)).Inc()
		e.logIndex("archived", now, "events for verifications already archived ignored: their closed markers are gone, the evidence index holds them",
			"vendor", string(ev.Vendor), "verification", ev.VerificationID)
		return true, true
	case err == nil:
		return false, true
	case ctx.Err() != nil:
		return false, false // shutting down: the event is redelivered
	}
	if last == nil {
		last = err
	}
	e.ix.mu.Lock()
	e.ix.downUntil = now.Add(indexDownFor)
	e.ix.mu.Unlock()
	e.m.indexCheckFailures.WithLabelValues(string(ev.Vendor)).Inc()
	e.logIndex("failed", now, "the evidence index cannot be read: events of unknown verifications are applied unchecked (a harvest is never skipped)",
		"vendor", string(ev.Vendor), "error", last.Error())
	return false, true
}

// logIndex logs a warning of kind at most once per indexLogEvery, with the
// number of occurrences since the last line.
func (e *Engine) logIndex(kind string, now time.Time, msg string, args ...any) {
	e.ix.mu.Lock()
	if e.ix.lastLog == nil {
		e.ix.lastLog, e.ix.unlogged = map[string]time.Time{}, map[string]int{}
	}
	e.ix.unlogged[kind]++
	n, last := e.ix.unlogged[kind], e.ix.lastLog[kind]
	logNow := last.IsZero() || now.Sub(last) >= indexLogEvery
	if logNow {
		e.ix.lastLog[kind], e.ix.unlogged[kind] = now, 0
	}
	e.ix.mu.Unlock()
	if logNow {
		e.log.Warn(msg, append(args, "count", n)...)
	}
}
