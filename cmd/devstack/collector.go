package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
)

// expected is what one planned verification's record must say.
type expected struct {
	outcome  string
	issuedAt time.Time
	callback bool // the simulator sends a Megvii callback
}

// collector gathers the records published on faceid.results and what is
// wrong with them: it owns no goroutine, the workload's loop feeds it.
type collector struct {
	want map[string]expected        // by record ce_id
	got  map[string]contract.Record // by ce_id
	raw  map[string][]byte          // each record's first value, to compare re-publications with
	dups int
	// mismatched is every unexpected finding, in the order found.
	mismatched []string
}

func newCollector(want map[string]expected) *collector {
	return &collector{want: want, got: map[string]contract.Record{}, raw: map[string][]byte{}}
}

func (c *collector) fail(format string, a ...any) {
	c.mismatched = append(c.mismatched, fmt.Sprintf(format, a...))
}

// add takes one message of faceid.results: its value, its offset and its
// ce_id header. A record is published under its own ce_id; one published
// again must carry the same content (law 2).
func (c *collector) add(value []byte, offset int64, ceID string) {
	var rec contract.Record
	if err := json.Unmarshal(value, &rec); err != nil {
		c.fail("a record at offset %d is not JSON: %v", offset, err)
		return
	}
	id := contract.RecordID(rec.Vendor, rec.VerificationID)
	if ceID != id {
		c.fail("%s:%s has ce_id %q, want %q", rec.Vendor, rec.VerificationID, ceID, id)
	}
	if prev, ok := c.raw[id]; ok {
		c.dups++
		if !bytes.Equal(prev, value) {
			c.fail("%s:%s was published twice with different content (%s)", rec.Vendor, rec.VerificationID, jsonDiff(prev, value))
		}
	}
	c.raw[id] = value
	c.got[id] = rec
}

// complete reports whether every planned verification has a record.
func (c *collector) complete() bool { return len(c.got) >= len(c.want) }

// harvested counts the records harvested so far.
func (c *collector) harvested() int {
	n := 0
	for _, r := range c.got {
		if r.Outcome == contract.OutcomeHarvested {
			n++
		}
	}
	return n
}

// byOutcome counts the records by outcome.
func (c *collector) byOutcome() map[string]int {
	by := map[string]int{}
	for _, r := range c.got {
		by[r.Outcome]++
	}
	return by
}

// checkOutcomes compares every record with what its plan expected: the
// outcome, and for a Megvii verification whose callback was sent, a
// harvest with most of the window left (with its callback, about 160 s of
// the 180 s are left; at the last chance, a lost callback, 40 s).
func (c *collector) checkOutcomes() {
	for id, w := range c.want {
		r, ok := c.got[id]
		switch {
		case !ok:
		case r.Outcome != w.outcome:
			c.fail("%s:%s is %s (%s), expected %s", r.Vendor, r.VerificationID, r.Outcome, r.Reason, w.outcome)
		case w.callback && r.WindowLeftSeconds < 100:
			c.fail("%s:%s was harvested with %.0f s left: its acknowledged callback was lost", r.Vendor, r.VerificationID, r.WindowLeftSeconds)
		}
	}
}
