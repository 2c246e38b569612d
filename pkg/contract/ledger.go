package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The ledger's topics: archivers append leaves to DefaultLedgerLeavesTopic (one
// partition: its order is the log's sequence), the integrator publishes each
// signed checkpoint to DefaultLedgerCheckpointsTopic.
const (
	DefaultLedgerLeavesTopic      = "faceid.ledger.leaves"
	DefaultLedgerCheckpointsTopic = "faceid.ledger.checkpoints"
	TypeLedgerLeaf                = "com.faceharvest.ledger.leaf.v1"
	TypeLedgerCheckpoint          = "com.faceharvest.ledger.checkpoint.v1"
	// ContentTypeCheckpoint is a C2SP signed note's media type.
	ContentTypeCheckpoint = "text/plain; charset=utf-8"
)

// LedgerLeaf asks the integrator to make a final index entry a leaf of the
// log: IndexKey names the by-id entry in the store (whose stored bytes are
// the leaf), EntrySHA256 is the SHA-256 of the bytes the archiver wrote or
// found there.
type LedgerLeaf struct {
	IndexKey    string    `json:"index_key"`
	EntrySHA256 string    `json:"entry_sha256"`
	IndexedAt   time.Time `json:"indexed_at"`
}

// Envelope renders the leaf for the leaves topic, keyed <vendor>:<id>; the
// same entry always has the same ce_id.
func (l LedgerLeaf) Envelope(v Vendor, id, source string) (Envelope, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{ID: EventID("ledger-leaf", l.IndexKey, l.EntrySHA256), Source: source, Type: TypeLedgerLeaf, Time: l.IndexedAt,
		Key: Key(v, id), Value: b}, nil
}

// ParseLedgerLeaf decodes a leaf message's value, refusing what is not one.
func ParseLedgerLeaf(b []byte) (LedgerLeaf, error) {
	var l LedgerLeaf
	if err := json.Unmarshal(b, &l); err != nil {
		return LedgerLeaf{}, fmt.Errorf("ledger leaf: %w", err)
	}
	if !strings.HasPrefix(l.IndexKey, "index/v1/by-id/") || strings.Contains(l.IndexKey, "..") {
		return LedgerLeaf{}, errors.New("ledger leaf: index_key is not a by-id index entry")
	}
	if len(l.EntrySHA256) != 64 {
		return LedgerLeaf{}, errors.New("ledger leaf: entry_sha256 is not a SHA-256")
	}
	return l, nil
}

// AuditExport is an audit event's action for an evidence bundle exported
// (faceharvest export): the record, the evidence document (the unmasked
// identity) and every media object left the store in one file.
const AuditExport = "export"
