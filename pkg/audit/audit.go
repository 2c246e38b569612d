// Package audit answers "who was verified, and how" from the object store
// alone: it finds a verification's record and evidence through the store's
// index (by vendor and id, or by biz_no), re-derives records from evidence
// documents, and records every view of personal data as an audit event.
//
// The operator command (cmd/faceharvest) and the audit page both read the
// store through Finder, so that each can be tested against a fake and the
// real store behind one contract suite.
package audit

import (
	"context"
	"errors"
	"io"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// ErrNotFound is returned for a verification the index does not know, and
// for an object key the verification does not reference.
var ErrNotFound = errors.New("verification not found")

// ErrMissing is returned (with ErrNotFound) for an object the index entry
// or the record names that the store does not hold: a record, an evidence
// document or a media object deleted by hand or expired by a lifecycle
// rule. It is not a store failure: trying again does not help.
var ErrMissing = errors.New("object missing from the store")

// Verification is what the store holds for one verification: its index
// entry and its record exactly as stored (and as published).
type Verification struct {
	Index  archiver.IndexEntry
	Record contract.Record
	// RecordJSON is the stored record's bytes.
	RecordJSON []byte
}

// Finder is the read side of the evidence store.
type Finder interface {
	// Get returns one verification by vendor and id, or ErrNotFound (with
	// ErrMissing when the entry's record is not in the store).
	Get(ctx context.Context, v contract.Vendor, id string) (Verification, error)
	// ByBizNo returns the verifications indexed under bizNo, oldest
	// decision first, each with the record its by-id entry names (as Get
	// returns it): the first limit of them (all when limit <= 0), and how
	// many there are. Only the records returned are read. None is not an
	// error.
	ByBizNo(ctx context.Context, bizNo string, limit int) ([]Verification, int, error)
	// Identity returns the verification's unmasked identity, read from its
	// evidence document (the record holds it masked). Callers record the
	// view as an audit event before showing it. ErrNotFound with ErrMissing
	// when the evidence document is not in the store.
	Identity(ctx context.Context, v Verification) (contract.Identity, error)
	// Open streams an object the verification references (a media object,
	// its evidence document or its record); ErrNotFound for any other key,
	// so that a caller cannot be made to read arbitrary keys, and
	// ErrNotFound with ErrMissing for one the store does not hold.
	Open(ctx context.Context, v Verification, key string) (io.ReadCloser, objstore.Attrs, error)
}
