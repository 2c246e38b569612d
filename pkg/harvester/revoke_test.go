package harvester

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// outageStore is a memStore whose writes of closed markers hang a moment
// and fail while out is set: the state topic is unwritable.
type outageStore struct {
	*memStore
	out      atomic.Bool
	refusals atomic.Int64
}

func (s *outageStore) Save(ctx context.Context, p int, key string, r *StateRecord) error {
	if s.out.Load() && r != nil && r.ClosedAt != nil {
		s.refusals.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
		return errors.New("NOT_ENOUGH_REPLICAS")
	}
	return s.memStore.Save(ctx, p, key, r)
}

// A revocation during a state-topic outage returns: the job waiting for
// its closed marker to be stored stops waiting when its partition is
// revoked (the next owner restores the stored decision and republishes
// the same terminal), instead of holding the revocation, and so the
// shutdown, for as long as the outage lasts.
func TestRevocationDuringStateOutageReturns(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	store := &outageStore{memStore: r.store}
	r.eng.cfg.Store, r.eng.w.store = store, store
	r.eng.revokeGrace = 100 * time.Millisecond
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "x", Status: "OK"})
	store.out.Store(true)
	r.eng.dispatch(r.ctx)
	eventually(t, "the terminal is published and the closed marker's write fails", func() bool {
		return len(r.raw.types()) == 2 && store.refusals.Load() > 0
	})
	revoked := make(chan struct{})
	go func() { r.eng.RevokePartition(0); close(revoked) }()
	select {
	case <-revoked:
	case <-time.After(2 * time.Minute):
		t.Fatalf("RevokePartition still waiting after 2 minutes of outage: %d jobs busy, %d closed-marker writes refused, raw %v",
			r.eng.busyCount(), store.refusals.Load(), r.raw.types())
	}
	if r.eng.Partitions() != 0 || r.eng.Pending() != 0 {
		t.Fatalf("after the revocation: %d partitions, %d pending", r.eng.Partitions(), r.eng.Pending())
	}
	// What the next owner restores: the stored decision, not a marker.
	if rec := r.store.get("megvii:x"); rec == nil || rec.State == nil || rec.State.Closing == nil {
		t.Fatalf("stored: %+v, want the closing decision", rec)
	}
}
