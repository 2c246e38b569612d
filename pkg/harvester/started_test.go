package harvester

import (
	"fmt"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/ingest"
)

// The harvester reports itself started (what its /readyz and the
// Deployment's startupProbe wait for) only once the partitions of its first
// generation are restored, or at once in a generation that gives it none (a
// standby replica).
func TestStartupTracker(t *testing.T) {
	var s startup
	if s.err() == nil {
		t.Fatal("started before joining")
	}
	s.joined(1, 2)
	s.restored(1)
	if s.err() == nil {
		t.Fatal("started with a partition of two still restoring")
	}
	s.joined(2, 2) // a rebalance before the first finished: the new generation counts
	s.restored(1)  // a late restore of the old generation does not
	s.restored(2)
	if s.err() == nil {
		t.Fatal("started with a partition of generation 2 still restoring")
	}
	s.restored(2)
	if s.err() != nil {
		t.Fatal("not started with every partition restored")
	}
	s.joined(3, 1) // later rebalances never take it back
	if s.err() != nil {
		t.Fatal("a rebalance made it unstarted")
	}
	var standby startup
	standby.joined(1, 0)
	if standby.err() != nil {
		t.Fatal("a replica without partitions never starts")
	}
}

func TestStartedAfterRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	w := newWorld(t, nil)
	var regs []ingest.Registration
	for i := 0; i < 30; i++ {
		regs = append(regs, ingest.Registration{Vendor: "megvii", VerificationID: fmt.Sprintf("started-%d", i)})
	}
	w.register(regs)
	stop, first := w.startHarvester(nil)
	w.waitLoaded(len(regs), first.Engine())
	stop()

	stop, h := w.startHarvester(nil)
	defer stop()
	deadline := time.Now().Add(3 * time.Minute)
	for h.Started() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not started: %v", h.Started())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Started means restored: everything is in the engine already.
	if e := h.Engine(); e.Partitions() != 3 || e.Pending() != len(regs) {
		t.Fatalf("started with %d partitions and %d of %d verifications", e.Partitions(), e.Pending(), len(regs))
	}
}
