package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
)

// ReplayConfig bounds a replay of records from the store.
type ReplayConfig struct {
	// Since keeps verifications decided at or after it (zero: all).
	Since time.Time
	// Vendors keeps these vendors' verifications (empty: both).
	Vendors []contract.Vendor
	// Limit stops after that many records (0: no limit).
	Limit int
	// ResumeAfter skips index keys up to and including it: the Last of an
	// earlier run's progress.
	ResumeAfter string
	// Unmask re-derives full names and ID numbers, as an archiver run with
	// --unmask-identity; it must match the archiver's for the records to
	// come out identical.
	Unmask bool
	// Source is the records' ce_source (the archiver's: archiver.DefaultConfig().Source when empty).
	Source string
	// Batch is how many records are published at once (100).
	Batch int
	// Progress is called after each published batch (and once at the end).
	Progress func(ReplayProgress)
}

// ReplayProgress counts a replay's work. Last is the index key of the last
// record published and acknowledged: a later run with ResumeAfter set to it
// continues after it.
type ReplayProgress struct {
	Total     int    `json:"total"`     // index entries in the walk
	Seen      int    `json:"seen"`      // entries read (after ResumeAfter)
	Published int    `json:"published"` // records published
	Changed   int    `json:"changed"`   // re-derived records that differ from the published one (published as corrections)
	Skipped   int    `json:"skipped"`   // entries outside Since or Vendors
	Last      string `json:"last"`
}

// Publish sends envelopes and returns once each is acknowledged.
type Publish func(ctx context.Context, es []contract.Envelope) error

// published reports whether value is the record the entry names as
// published: its SHA-256 when the entry has one (the stored bytes may have
// been altered since), else the stored bytes.
func published(e archiver.IndexEntry, stored, value []byte) bool {
	if e.Record.SHA256 == "" {
		return bytes.Equal(value, stored)
	}
	sum := sha256.Sum256(value)
	return hex.EncodeToString(sum[:]) == e.Record.SHA256
}

// Replay re-derives the record of every indexed verification from its
// evidence document (archiver.RecordFromEvidence, the archiver's own code)
// and publishes it as the archiver does (archiver.RecordEnvelope). A record
// that is the published one, byte for byte, keeps the record's ce_id
// (contract.RecordID); one that differs (a correction: the code or the
// mask changed) gets contract.RecordRevisionID of its content, so that a
// consumer deduplicating on ce_id sees it, once however often the replay
// runs. The store is only read: the first record stays the stored, final
// one. Verifications are walked in index-key order, so a run is
// resumable from its Last key and two runs publish the same sequence.
func (s *Store) Replay(ctx context.Context, cfg ReplayConfig, publish Publish) (ReplayProgress, error) {
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Source == "" {
		cfg.Source = archiver.DefaultConfig().Source
	}
	keys, err := s.replayKeys(ctx, cfg.Vendors)
	if err != nil {
		return ReplayProgress{}, err
	}
	r := &replay{s: s, cfg: cfg, publish: publish, pr: ReplayProgress{Total: len(keys)}}
	for _, k := range keys {
		if cfg.Limit > 0 && r.pr.Published+len(r.batch) >= cfg.Limit {
			break
		}
		if cfg.ResumeAfter != "" && k <= cfg.ResumeAfter {
			continue
		}
		if err := r.add(ctx, k); err != nil {
			return r.pr, err
		}
	}
	if err := r.flush(ctx); err != nil {
		return r.pr, err
	}
	if cfg.Progress != nil {
		cfg.Progress(r.pr)
	}
	return r.pr, nil
}

// replayKeys lists the by-id index keys of vendors (both when empty), in
// key order.
func (s *Store) replayKeys(ctx context.Context, vendors []contract.Vendor) ([]string, error) {
	if len(vendors) == 0 {
		vendors = []contract.Vendor{contract.Baidu, contract.Megvii}
	}
	var keys []string
	for _, v := range vendors {
		ks, err := s.b.List(ctx, archiver.IndexByID+string(v)+"/")
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	sort.Strings(keys)
	return keys, nil
}

// replay is one run of Replay: its progress and the batch it fills.
type replay struct {
	s         *Store
	cfg       ReplayConfig
	publish   Publish
	pr        ReplayProgress
	batch     []contract.Envelope
	batchLast string
}

// add re-derives the record of index key k into the batch (unless it is
// outside Since), publishing the batch when it is full.
func (r *replay) add(ctx context.Context, k string) error {
	r.pr.Seen++
	v, err := r.s.loadForReplay(ctx, k)
	if err != nil {
		return err
	}
	if !r.cfg.Since.IsZero() && v.Index.DecidedAt.Before(r.cfg.Since) {
		r.pr.Skipped++
		return nil
	}
	env, changed, err := r.s.rederive(ctx, k, v, r.cfg)
	if err != nil {
		return err
	}
	if changed {
		r.pr.Changed++
	}
	r.batch = append(r.batch, env)
	r.batchLast = k
	if len(r.batch) >= r.cfg.Batch {
		return r.flush(ctx)
	}
	return nil
}

// flush publishes the batch and reports the progress.
func (r *replay) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	if err := r.publish(ctx, r.batch); err != nil {
		return err
	}
	r.pr.Published += len(r.batch)
	r.pr.Last = r.batchLast
	r.batch = r.batch[:0]
	if r.cfg.Progress != nil {
		r.cfg.Progress(r.pr)
	}
	return nil
}

// loadForReplay reads the verification at index key k. A stored record
// that was altered does not stop the replay: the evidence document
// decides, so then only the index entry is kept.
func (s *Store) loadForReplay(ctx context.Context, k string) (Verification, error) {
	v, err := s.load(ctx, k)
	if !errors.Is(err, ErrMismatch) {
		return v, err
	}
	b, err := s.read(ctx, k, maxEntry)
	if err != nil {
		return Verification{}, err
	}
	e, err := archiver.ParseIndexEntry(b)
	if err != nil {
		return Verification{}, err
	}
	return Verification{Index: e}, nil
}

// rederive builds the record of v from its evidence document, as the
// archiver publishes it; changed when it is not the published one (then
// under a ce_id of its content).
func (s *Store) rederive(ctx context.Context, k string, v Verification, cfg ReplayConfig) (contract.Envelope, bool, error) {
	e := v.Index
	doc, attrs, err := s.Evidence(ctx, v)
	if err != nil {
		return contract.Envelope{}, false, err
	}
	at, err := archiver.EvidenceArchivedAt(e.Evidence.Key, attrs)
	if err != nil {
		return contract.Envelope{}, false, err
	}
	rec, err := archiver.RecordFromEvidence(doc, e.Evidence.Key, at, !cfg.Unmask)
	if err != nil {
		return contract.Envelope{}, false, err
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return contract.Envelope{}, false, fmt.Errorf("record of %s: %w", k, err)
	}
	env := archiver.RecordEnvelope(rec, value, cfg.Source)
	if published(e, v.RecordJSON, value) {
		return env, false, nil
	}
	sum := sha256.Sum256(value)
	env.ID = contract.RecordRevisionID(rec.Vendor, rec.VerificationID, hex.EncodeToString(sum[:]))
	return env, true, nil
}
