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
	"github.com/faceharvest/faceharvest/pkg/objstore"
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

// errReplayLimit stops a replay's walk at its Limit.
var errReplayLimit = errors.New("replay limit reached")

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
	vendors := cfg.Vendors
	if len(vendors) == 0 {
		vendors = []contract.Vendor{contract.Baidu, contract.Megvii}
	}
	// Vendors in order: their prefixes list the index in key order.
	vendors = append([]contract.Vendor(nil), vendors...)
	sort.Slice(vendors, func(i, j int) bool { return vendors[i] < vendors[j] })
	var pr ReplayProgress
	// Total counts the entries in a listing of its own: the walk below
	// holds one key at a time.
	for _, v := range vendors {
		if err := s.b.Iter(ctx, archiver.IndexByID+string(v)+"/", func(string) error {
			pr.Total++
			return nil
		}); err != nil {
			return ReplayProgress{}, err
		}
	}
	var batch []contract.Envelope
	var batchLast string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := publish(ctx, batch); err != nil {
			return err
		}
		pr.Published += len(batch)
		pr.Last = batchLast
		batch = batch[:0]
		if cfg.Progress != nil {
			cfg.Progress(pr)
		}
		return nil
	}
	step := func(k string) error {
		pr.Seen++
		v, err := s.load(ctx, k)
		if err != nil && !errors.Is(err, ErrMismatch) {
			return err
		}
		// A stored record that was altered does not stop the replay: the
		// evidence document decides.
		e := v.Index
		if errors.Is(err, ErrMismatch) {
			b, rerr := s.read(ctx, k, maxEntry)
			if rerr != nil {
				return rerr
			}
			if e, rerr = archiver.ParseIndexEntry(b); rerr != nil {
				return rerr
			}
			v = Verification{Index: e}
		}
		if !cfg.Since.IsZero() && e.DecidedAt.Before(cfg.Since) {
			pr.Skipped++
			return nil
		}
		doc, attrs, err := s.Evidence(ctx, v)
		if err != nil {
			return err
		}
		at, err := archiver.EvidenceArchivedAt(e.Evidence.Key, attrs)
		if err != nil {
			return err
		}
		rec, err := archiver.RecordFromEvidence(doc, e.Evidence.Key, at, !cfg.Unmask)
		if err != nil {
			return err
		}
		value, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("record of %s: %w", k, err)
		}
		env := archiver.RecordEnvelope(rec, value, cfg.Source)
		if !published(e, v.RecordJSON, value) {
			pr.Changed++
			sum := sha256.Sum256(value)
			env.ID = contract.RecordRevisionID(rec.Vendor, rec.VerificationID, hex.EncodeToString(sum[:]))
		}
		batch = append(batch, env)
		batchLast = k
		if len(batch) >= cfg.Batch {
			if err := flush(); err != nil {
				return err
			}
		}
		return nil
	}
	// The listing starts after the resume point: the keys before it are
	// not listed at all.
	for _, v := range vendors {
		err := s.b.Iter(ctx, archiver.IndexByID+string(v)+"/", func(k string) error {
			if cfg.Limit > 0 && pr.Published+len(batch) >= cfg.Limit {
				return errReplayLimit
			}
			return step(k)
		}, objstore.StartAfter(cfg.ResumeAfter))
		if errors.Is(err, errReplayLimit) {
			break
		}
		if err != nil {
			return pr, err
		}
	}
	if err := flush(); err != nil {
		return pr, err
	}
	if cfg.Progress != nil {
		cfg.Progress(pr)
	}
	return pr, nil
}
