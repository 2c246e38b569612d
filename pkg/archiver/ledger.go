package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// LeafWriter is what the archiver needs to append leaves to the ledger's
// leaves topic: a synchronous, acks=all write (a bus.NewWriter writer).
type LeafWriter interface {
	WriteMessages(ctx context.Context, msgs ...contract.Message) error
}

// appendLeaf asks the ledger to make a verification's final by-id index
// entry a leaf of the evidence log, once the entry is stored: body is the
// entry's bytes as stored, nil to read them. It returns only when the
// leaves topic acknowledged, so the terminal is not committed before; an
// entry appended twice (a re-processed terminal, a republished record) is
// one leaf, the integrator skips repeats.
func (a *Archiver) appendLeaf(ctx context.Context, v contract.Vendor, id string, body []byte) error {
	if a.cfg.Ledger == nil {
		return nil
	}
	key := IndexKey(v, id)
	if body == nil {
		var err error
		if body, err = a.getRetry(ctx, key, 1<<20); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(body)
	leaf := contract.LedgerLeaf{IndexKey: key, EntrySHA256: hex.EncodeToString(sum[:]), IndexedAt: a.cfg.Now().UTC()}
	env, err := leaf.Envelope(v, id, a.cfg.Source)
	if err != nil {
		return err
	}
	// Like the store, the topic is retried until ctx ends: an outage
	// delays the record, it never leaves an entry out of the log.
	return retry.Do(ctx, a.retryPolicy(func(try int, err error) {
		a.m.ledgerFailures.Inc()
		if try == 1 || try%10 == 0 {
			a.log.Warn("ledger leaf not acknowledged; retrying", "key", key, "try", try, "error", err.Error())
		}
	}), func(int) error {
		return unlessDone(ctx, a.cfg.Ledger.WriteMessages(ctx, env.Message()))
	})
}
