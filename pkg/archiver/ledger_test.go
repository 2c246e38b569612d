package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/faceharvest/faceharvest/pkg/clock"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// leaves records what the archiver appends to the leaves topic; its first
// fail writes fail (a broker outage).
type leaves struct {
	mu   sync.Mutex
	fail int
	got  []contract.Message
}

func (l *leaves) WriteMessages(_ context.Context, msgs ...contract.Message) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail > 0 {
		l.fail--
		return errors.New("broker unavailable")
	}
	l.got = append(l.got, msgs...)
	return nil
}

// Every final index entry is appended as a leaf once stored, naming the
// entry and the SHA-256 of its stored bytes; a terminal processed again
// appends the same leaf (same ce_id) again, and a topic outage delays the
// record instead of leaving the entry out.
func TestFinalEntryBecomesALeaf(t *testing.T) {
	store := objstore.NewMemory()
	clk := clock.NewSim(t0.Add(time.Hour), 0, nil)
	lw := &leaves{fail: 2}
	a := simArchiver(t, store, clk, nil)
	a.cfg.Ledger = lw
	term, r := megviiWithBizNo(t, "lg-1", "loan-1", 3)
	rec := archive(t, a, term, r)
	_, body := readEntry(t, store, IndexKey(rec.Vendor, rec.VerificationID))
	archive(t, a, term, r) // re-processed after a crash
	if len(lw.got) != 2 {
		t.Fatalf("%d leaves appended, want 2 (one per processing)", len(lw.got))
	}
	for _, m := range lw.got {
		env, err := contract.FromMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		l, err := contract.ParseLedgerLeaf(env.Value)
		if err != nil {
			t.Fatal(err)
		}
		if env.Type != contract.TypeLedgerLeaf || env.Key != contract.Key(rec.Vendor, rec.VerificationID) || l.IndexKey != IndexKey(rec.Vendor, rec.VerificationID) {
			t.Fatalf("leaf %+v %+v", env, l)
		}
		if l.EntrySHA256 != sha256Hex(body) {
			t.Fatalf("leaf names sha256 %s, the stored entry has %s", l.EntrySHA256, sha256Hex(body))
		}
		if env.ID != mustEnv(t, lw.got[0]).ID {
			t.Fatal("the same entry's leaves have different ce_ids")
		}
	}
}

func mustEnv(t *testing.T, m contract.Message) contract.Envelope {
	env, err := contract.FromMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
