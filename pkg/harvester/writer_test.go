package harvester

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// flakyStore fails its first failures writes.
type flakyStore struct {
	memStore
	fmu      sync.Mutex
	failures int
	tries    int
}

func (s *flakyStore) Save(ctx context.Context, p int, key string, r *StateRecord) error {
	s.fmu.Lock()
	s.tries++
	fail := s.tries <= s.failures
	s.fmu.Unlock()
	if fail {
		return errors.New("not leader for partition")
	}
	return s.memStore.Save(ctx, p, key, r)
}

// waitLog records the back-off waits asked for, returning at once.
type waitLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (w *waitLog) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waits = append(w.waits, d)
	return ctx.Err()
}

// A state write that fails is retried, backing off through the injected
// wait, and the event counts as handled only once a write is acknowledged.
func TestStateWriteRetriesUntilAcknowledged(t *testing.T) {
	store := &flakyStore{failures: 3}
	r := newSteppedRig(t, 1, okAnswer)
	waits := &waitLog{}
	r.eng.w.store, r.eng.w.wait = store, waits.wait
	r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "w1"})
	if rec := store.get("megvii:w1"); rec == nil || rec.State == nil {
		t.Fatalf("acknowledged without a stored state: %+v", rec)
	}
	waits.mu.Lock()
	got := slices.Clone(waits.waits)
	waits.mu.Unlock()
	if want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}; !slices.Equal(got, want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	if n := testutil.ToFloat64(r.eng.m.stateWriteErrors); n != 3 {
		t.Fatalf("state write errors %v, want 3", n)
	}
}

// Run dispatches on its ticks as well as on wake-ups: an item that becomes
// due as the clock moves wakes nobody, and is started on the next tick.
func TestRunDispatchesOnItsTicks(t *testing.T) {
	r := newSteppedRig(t, 1, okAnswer)
	ticks := make(chan time.Time)
	r.eng.ticks = func() (<-chan time.Time, func()) { return ticks, func() {} }
	issued := r.clk.Now()
	r.event(contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "t1", IssuedAt: &issued})
	r.step(t) // not due before its last chance
	next := r.eng.NextWake()
	if next.IsZero() {
		t.Fatal("t1 does not wait")
	}
	select {
	case <-r.eng.wake: // the step's job woke the dispatcher that is not there
	default:
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	go func() { _ = r.eng.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ticks <- next // taken: Run made its first dispatch, before t1 was due
	r.clk.Set(next)
	ticks <- next // the dispatch after it is the only one that can start t1
	eventually(t, "t1 harvested", func() bool { rec := r.store.get("megvii:t1"); return rec != nil && rec.ClosedAt != nil })
}

// A revoked partition's state writes end with it (law 2): a write that was
// failing when its partition was revoked is not tried again once the
// partition has moved on. Here the partition comes back to the same engine,
// whose new item harvests and closes the verification; the old write, had
// it been retried after that, would have put the pending state back over
// the closed marker, and the next restore would have harvested it again.
func TestRevokedPartitionsWritesEndWithIt(t *testing.T) {
	store := &flakyStore{failures: 1}
	r := newSteppedRig(t, 1, okAnswer)
	waiting := make(chan struct{})
	release := make(chan struct{})
	r.eng.w.store, r.caller.store = store, &store.memStore
	r.eng.w.wait = func(ctx context.Context, d time.Duration) error {
		select {
		case waiting <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before the rig's cleanup, which waits for the writes
	issued := r.clk.Now()
	pending := r.eng.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: contract.Megvii, VerificationID: "rv1", IssuedAt: &issued, ReceivedAt: issued})
	<-waiting // the first write failed; its retry waits
	r.eng.RevokePartition(0)
	select {
	case <-pending:
		t.Fatal("the event counts as stored although no write of it was acknowledged")
	default:
	}
	r.eng.AddPartition(0, nil) // back to this engine; the store holds nothing of rv1
	r.event(contract.TypeMegviiCallback, contract.Event{Vendor: contract.Megvii, VerificationID: "rv1", Status: "OK", IssuedAt: &issued})
	eventually(t, "rv1 closed", func() bool {
		r.eng.dispatch(r.ctx)
		rec := store.get("megvii:rv1")
		return rec != nil && rec.ClosedAt != nil
	})
	releaseAll() // an old write still waiting tries again now
	r.eng.wg.Wait()
	if rec := store.get("megvii:rv1"); rec == nil || rec.ClosedAt == nil {
		t.Fatalf("the revoked partition's write replaced the closed marker: %+v (writes %v)", rec, store.writes)
	}
}
