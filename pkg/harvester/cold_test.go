package harvester

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/schedule"
	"github.com/faceharvest/faceharvest/pkg/schedule/scheduletest"
)

// TestRestoredWaitingItemsAreFrozen: a restored partition keeps its waiting
// verifications frozen, each thaws to its record, and an event for one
// thaws, applies and freezes it again.
func TestRestoredWaitingItemsAreFrozen(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	now := time.Unix(1_700_000_000, 0).UTC()
	store := &memStore{}
	e := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Now, c.Store = schedule.Defaults(), func() time.Time { return now }, store
	}))
	recs := map[string]*StateRecord{}
	want := map[string]string{}
	for i := range 500 {
		st := scheduletest.RandomState(r, i)
		st.NextAt = now.Add(time.Duration(1+r.IntN(3600)) * time.Second)
		recs[st.Key()] = &StateRecord{State: st}
		b, _ := json.Marshal(st)
		want[st.Key()] = string(b)
	}
	// The verification the event is for is fixed, not drawn: an event
	// recomputes the first call of a state without failures, and a random
	// one (completed long ago, or never seen) becomes due at once, rightly
	// not frozen. This one was issued an hour ago and has no callback yet,
	// so it waits for Megvii's last chance, hours ahead, after the event.
	issued := now.Add(-time.Hour).In(time.FixedZone("", 8*3600))
	// It has no biz_no yet: the registration below gives it one (a
	// registration never replaces one already there).
	fixed := &schedule.State{Vendor: contract.Megvii, ID: "fixed,ä", FirstSeen: issued, IssuedAt: &issued,
		NextAt: now.Add(20 * time.Hour), Spent: 1, Attempts: 7, LastWindowLeft: 12.5, Procedure: "video"}
	key := fixed.Key()
	recs[key] = &StateRecord{State: fixed}
	b, _ := json.Marshal(fixed)
	want[key] = string(b)
	e.AddPartition(0, recs)
	e.mu.Lock()
	for k, it := range e.items {
		if it.st != nil || it.cold == "" {
			t.Fatalf("%s is not frozen", k)
		}
	}
	e.mu.Unlock()
	for k, w := range want {
		st, ok := e.Snapshot(k)
		if b, _ := json.Marshal(st); !ok || string(b) != w {
			t.Fatalf("%s: snapshot %s, want %s", k, b, w)
		}
	}
	v, id, _ := contract.SplitKey(key)
	<-e.Apply(0, contract.TypeTokenRegistered, contract.Event{Vendor: v, VerificationID: id, BizNo: "changed", ReceivedAt: now})
	// The saver stored the changed state from the frozen item, whole.
	st, _ := e.Snapshot(key)
	store.mu.Lock()
	saved := store.recs[key]
	store.mu.Unlock()
	b1, _ := json.Marshal(st)
	b2, _ := json.Marshal(saved.State)
	if st.BizNo != "changed" || string(b1) != string(b2) {
		t.Fatalf("applied %s, stored %s", b1, b2)
	}
	if !st.NextAt.After(now) {
		t.Fatalf("after the event the next call is %v, not after %v: the fixed state no longer waits", st.NextAt, now)
	}
	e.mu.Lock()
	it := e.items[key]
	if it.st != nil || it.cold == "" {
		t.Fatalf("after the event the item is not frozen again: %+v", it)
	}
	e.mu.Unlock()
}

// TestRestoreSkipsRecordsUnderForeignKeys: a state record whose key does not
// name its verification (not written by a harvester) is skipped, without a
// panic, while the others are restored.
func TestRestoreSkipsRecordsUnderForeignKeys(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UTC()
	e := NewEngine(engineConfig(func(c *EngineConfig) {
		c.Policy, c.Now, c.Store = schedule.Defaults(), func() time.Time { return now }, &memStore{}
	}))
	st := func(id string) *StateRecord {
		return &StateRecord{State: &schedule.State{Vendor: contract.Megvii, ID: id, FirstSeen: now, NextAt: now.Add(time.Hour)}}
	}
	e.AddPartition(0, map[string]*StateRecord{"megvii:a": st("a"), "no-separator": st("b"), "baidu:c": st("c")})
	if n := e.Pending(); n != 1 {
		t.Fatalf("%d restored, want 1", n)
	}
	if _, ok := e.Snapshot("megvii:a"); !ok {
		t.Fatal("megvii:a was not restored")
	}
}
