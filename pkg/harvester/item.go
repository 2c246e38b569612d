package harvester

import (
	"context"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
)

// item is one open verification. Its fields are sized for a million of
// them: times as Unix nanoseconds, indexes and versions in 32 bits, and the
// state frozen (schedule.Freeze) while it only waits.
//
// Every field is guarded by Engine.mu. Who changes what: the book (Apply,
// AddPartition, RevokePartition) and the item's job change st, closedAt and
// unreg; the queue changes nextAt, deadline, waitIdx and dueIdx; the state
// writer changes version, saved, saving and lastErrLog; dispatch sets busy
// and the job clears it. A busy item belongs to its job: nothing else
// queues or freezes it, though Apply may still change its state.
type item struct {
	key        string
	st         *schedule.State // nil while frozen
	cold       string          // the frozen state, when st is nil
	closedAt   *time.Time
	nextAt     int64 // the state's NextAt: the waiting heap's order
	deadline   int64 // the due heap's order
	lastErrLog int64
	version    uint32
	saved      uint32
	part       int32
	waitIdx    int32
	dueIdx     int32
	saving     bool
	busy       bool
	unreg      bool // the state is Unregistered: counted in Engine.unregistered
}

// vendor is the vendor part of the item's key.
func (it *item) vendor() contract.Vendor {
	i := strings.IndexByte(it.key, ':')
	if i < 0 {
		return "" // every key is vendor:id (AddPartition skips others)
	}
	return contract.Vendor(it.key[:i])
}

// hasState reports whether the item holds a state (thawed or frozen).
func (it *item) hasState() bool { return it.st != nil || it.cold != "" }

// stateLocked thaws the item's state if it is frozen and returns it; nil
// when the item has none.
func (it *item) stateLocked() *schedule.State {
	if it.st == nil && it.cold != "" {
		it.st, it.cold = schedule.MustThaw(it.key, it.cold), ""
	}
	return it.st
}

// stateCopyLocked returns a copy of the item's state, thawed or frozen,
// leaving the item as it is; nil when it has none.
func (it *item) stateCopyLocked() *schedule.State {
	switch {
	case it.st != nil:
		cp := *it.st
		return &cp
	case it.cold != "":
		return schedule.MustThaw(it.key, it.cold)
	}
	return nil
}

// freezeLocked packs the state of an item that only waits.
func (it *item) freezeLocked() {
	if it.st != nil && !it.busy && it.waitIdx >= 0 && schedule.CanFreeze(it.st) {
		it.cold, it.st = schedule.Freeze(it.st), nil
	}
}

// closedMark is a closed verification's marker: when it closed and the
// partition it belongs to (guarded by Engine.mu).
type closedMark struct {
	at   time.Time
	part int
}

// partition is what the engine keeps of an owned partition (guarded by
// Engine.mu): how many of its items are busy, and, once RevokePartition
// began, the channel closed when the last of them is done. stop ends
// revokeGrace after the revocation began (or when it is over): its jobs
// stop waiting for state writes (which the revocation drops) and start no
// further call.
type partition struct {
	busy    int
	revoked bool
	idle    chan struct{} // closed when busy drops to 0 after revocation
	stop    context.Context
	cancel  context.CancelFunc
}

func newPartition() *partition {
	ps := &partition{}
	ps.stop, ps.cancel = context.WithCancel(context.Background())
	return ps
}
