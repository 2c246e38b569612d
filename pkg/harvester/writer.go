package harvester

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// State write retries: a write that fails is tried again, doubling from
// stateRetryMin to stateRetryMax, until the store acknowledges it (an
// event's offset waits for it); one log line per key this often at most.
const (
	stateRetryMin     = 100 * time.Millisecond
	stateRetryMax     = 5 * time.Second
	stateWriteTimeout = 30 * time.Second
	stateErrLogEvery  = 10 * time.Second
)

// stateWriter writes the items' states behind their changes (write-behind):
// marking an item dirty returns a channel closed once that version of its
// state, or a later one, is acknowledged by the store. A dirty item has one
// saver goroutine, which writes the latest version until the stored one is
// current: the writes of a key are never concurrent, so the last one wins
// in order.
//
// The writer has no lock of its own: mu is the engine's, and guards waiters
// and the items' version, saved, saving and lastErrLog fields. A saver takes
// it to read the record to write and to settle the waiters, never across a
// Save.
type stateWriter struct {
	mu *sync.Mutex
	wg *sync.WaitGroup // one count per saver goroutine
	// parts are the savers of each partition: a revocation ends the
	// partition's (see endPartitionLocked).
	parts map[int32]*partSavers
	store StateStore
	wait  retry.Wait // the back-off's wait (retry.Sleep; tests inject)
	now   clock.Now
	log   *slog.Logger
	m     *Metrics
	// waiters are the callers waiting for an item's state to be stored (few
	// at a time: kept here rather than in every item).
	waiters map[*item][]saveWaiter
}

// partSavers are a partition's saver goroutines: ctx ends when the
// partition is revoked, and wg counts them.
type partSavers struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type saveWaiter struct {
	version uint32
	ch      chan struct{}
}

// markLocked records a change of it and makes sure a saver writes it; the
// channel is closed once it is stored.
func (w *stateWriter) markLocked(it *item) <-chan struct{} {
	it.version++
	ch := make(chan struct{})
	w.waiters[it] = append(w.waiters[it], saveWaiter{it.version, ch})
	if !it.saving {
		it.saving = true
		ps := w.parts[it.part]
		if ps == nil {
			ps = &partSavers{}
			ps.ctx, ps.cancel = context.WithCancel(context.Background())
			w.parts[it.part] = ps
		}
		w.wg.Add(1)
		ps.wg.Add(1)
		go w.saver(it, ps)
	}
	return ch
}

// endPartitionLocked ends the saves of partition p, revoked: a save that
// is under way finishes (what it sent is in the log before the partition's
// next owner writes), none is tried again, and the waiters of what was not
// stored are never told it was (their events are redelivered to the next
// owner). The returned function waits for the savers to end.
func (w *stateWriter) endPartitionLocked(p int32) (wait func()) {
	ps := w.parts[p]
	if ps == nil {
		return func() {}
	}
	delete(w.parts, p)
	ps.cancel()
	return ps.wg.Wait
}

// saver writes it until what is stored is current, or its partition is
// revoked.
func (w *stateWriter) saver(it *item, ps *partSavers) {
	defer w.wg.Done()
	defer ps.wg.Done()
	for {
		v, ok := w.writeAcked(ps.ctx, it)
		w.mu.Lock()
		if !ok {
			it.saving = false
			delete(w.waiters, it)
			w.mu.Unlock()
			return
		}
		it.saved = v
		w.settleLocked(it, v)
		if it.version == it.saved {
			it.saving = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// writeAcked writes it's current record, retrying until the store
// acknowledges one, and returns the version written; false when revoked
// (ctx ended) first. A Save under way is not cut short by the revocation:
// it either lands before the revocation returns or fails.
func (w *stateWriter) writeAcked(revoked context.Context, it *item) (uint32, bool) {
	var v uint32
	p := retry.Policy{Backoff: retry.Backoff{Min: stateRetryMin, Max: stateRetryMax}, Wait: w.wait,
		OnFailure: func(_ int, err error, _ time.Duration) { w.failed(it, err) }}
	err := retry.Do(revoked, p, func(int) error {
		if revoked.Err() != nil {
			return retry.Permanent(revoked.Err())
		}
		w.mu.Lock()
		var rec *StateRecord
		v, rec = it.version, recordLocked(it)
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), stateWriteTimeout)
		defer cancel()
		return w.store.Save(ctx, int(it.part), it.key, rec)
	})
	if err != nil {
		return 0, false
	}
	w.m.stateWrites.Inc()
	return v, true
}

// recordLocked is what the state topic is to hold for it: its closed
// marker, its state, or nil for a discarded state (a tombstone).
func recordLocked(it *item) *StateRecord {
	if it.closedAt != nil {
		t := *it.closedAt
		return &StateRecord{ClosedAt: &t}
	}
	if st := it.stateCopyLocked(); st != nil {
		return &StateRecord{State: st}
	}
	return nil
}

// failed counts a failed write, logging it once per stateErrLogEvery per key.
func (w *stateWriter) failed(it *item, err error) {
	w.m.stateWriteErrors.Inc()
	w.mu.Lock()
	defer w.mu.Unlock()
	if now := w.now(); now.Sub(time.Unix(0, it.lastErrLog)) > stateErrLogEvery {
		w.log.Warn("state write failed; retrying", "key", it.key, "error", err.Error())
		it.lastErrLog = now.UnixNano()
	}
}

// settleLocked closes the channels of the waiters for version v or earlier.
func (w *stateWriter) settleLocked(it *item, v uint32) {
	kept := w.waiters[it][:0]
	for _, sw := range w.waiters[it] {
		if sw.version <= v {
			close(sw.ch)
		} else {
			kept = append(kept, sw)
		}
	}
	if len(kept) == 0 {
		delete(w.waiters, it)
	} else {
		w.waiters[it] = kept
	}
}
