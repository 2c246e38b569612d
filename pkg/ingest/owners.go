package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Owners of verifications.
//
// A verification belongs to the API caller whose registration came first:
// another caller may not register it again (it could backdate issued_at
// and close it expired, or change its biz_no) nor get its signed landing
// URLs. A caller is named by callerID, a hash of its bearer token (never
// the token), carried by every registration event (contract.Event.Caller).
//
// Two places keep the rule. The harvester's merge (schedule.State.Owner,
// State.Foreign) is the authority: every event of a verification reaches
// one partition's single consumer, and its state survives restarts in
// the state topic, so another caller's registration changes nothing
// whichever ingest replica accepted it. Ingest answers 409 (reason
// foreign_caller) to another caller's registration of a verification
// this replica registered, from a bounded memory of recent owners: the
// quick answer, not the guarantee.

// MinBearerTokenLen is the shortest bearer token the ingest binary accepts
// (FACEHARVEST_INGEST_TOKENS), as the audit page's token file.
const MinBearerTokenLen = 16

// maxOwners bounds the owners one replica remembers (the oldest go
// first): about 100 bytes each.
const maxOwners = 200_000

// callerID names the caller of a bearer token: the first 8 bytes of its
// SHA-256, in hex.
func callerID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:8])
}

type owners struct {
	mu    sync.Mutex
	max   int
	by    map[string]string // verification key -> caller
	order []string          // keys, oldest first (a ring once full)
	next  int
}

func newOwners(max int) *owners {
	return &owners{max: max, by: map[string]string{}}
}

// mayRegister reports whether caller may register key: nobody registered
// it through this replica, or caller did.
func (o *owners) mayRegister(key, caller string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.by[key]
	return !ok || c == caller
}

// bind records caller as key's owner unless it has one.
func (o *owners) bind(key, caller string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.by[key]; ok {
		return
	}
	if len(o.order) < o.max {
		o.order = append(o.order, key)
	} else {
		delete(o.by, o.order[o.next])
		o.order[o.next] = key
		o.next = (o.next + 1) % o.max
	}
	o.by[key] = caller
}
