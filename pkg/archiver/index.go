package archiver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
	"github.com/faceharvest/faceharvest/pkg/retry"
)

// IndexSchema names the index entry's version.
const IndexSchema = "faceharvest.index.v1"

// IndexEntry is the store's index of a verification's first record: what
// makes that record final, and how the verification's evidence is found
// by vendor and id, or by biz_no, alone. The same entry is stored under
// IndexKey and, when the record has a biz_no, under BizNoIndexKey.
type IndexEntry struct {
	Schema         string             `json:"schema"`
	Vendor         contract.Vendor    `json:"vendor"`
	VerificationID string             `json:"verification_id"`
	BizNo          string             `json:"biz_no,omitempty"`
	RecordID       string             `json:"record_id"` // the record's ce_id
	Outcome        string             `json:"outcome"`
	DecidedAt      time.Time          `json:"decided_at"` // the terminal's, which names the evidence document's day
	Evidence       contract.ObjectRef `json:"evidence"`
	Record         contract.ObjectRef `json:"record"`
	// Media are the stored objects the record references (its media and
	// its attempts' media, each key once). Entries written before the
	// field existed lack it; the record lists the same objects.
	Media []contract.ObjectRef `json:"media,omitempty"`
}

// The index prefixes: every index the store keeps is under IndexRoot.
const (
	IndexRoot       = "index/v1/"
	IndexByID       = IndexRoot + "by-id/"
	IndexByBizNo    = IndexRoot + "by-biz-no/"
	indexIDLabel    = "by_id"
	indexBizNoLabel = "by_biz_no"
)

// IndexKey is where a verification's index entry is stored: by vendor and
// id, independent of any date, so that a verification is found (and its
// record stays final) for as long as the index is kept.
func IndexKey(v contract.Vendor, id string) string {
	return IndexByID + string(v) + "/" + safeName(id) + ".json"
}

// BizNoPrefix is the prefix under which every verification of a biz_no is
// indexed: listing it finds them all. The biz_no is the customer's own
// reference (an application or contract number, sometimes built from
// personal data), and keys are not encrypted at rest like bodies: they
// appear in listings, access logs, inventories and audit trails. So the
// key holds the biz_no's SHA-256, never the biz_no itself (which the entry's
// body holds); the hash also needs no escaping and has one length.
func BizNoPrefix(bizNo string) string {
	s := sha256.Sum256([]byte(bizNo))
	return IndexByBizNo + hex.EncodeToString(s[:]) + "/"
}

// BizNoIndexKey is where a verification's entry is stored under its biz_no.
func BizNoIndexKey(bizNo string, v contract.Vendor, id string) string {
	return BizNoPrefix(bizNo) + string(v) + "/" + safeName(id) + ".json"
}

// ParseIndexEntry decodes an index entry, refusing what is not one.
func ParseIndexEntry(b []byte) (IndexEntry, error) {
	var e IndexEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return IndexEntry{}, fmt.Errorf("index entry: %w", err)
	}
	if e.Schema != IndexSchema || e.Record.Key == "" || e.Evidence.Key == "" || e.Vendor == "" || e.VerificationID == "" {
		return IndexEntry{}, errors.New("index entry: not a " + IndexSchema + " entry")
	}
	return e, nil
}

// RecordKey is where a verification's published record is stored: beside
// its evidence document, under the same day.
func RecordKey(v contract.Vendor, day time.Time, id string) string {
	return string(v) + "/" + day.UTC().Format("2006/01/02") + "/records/" + safeName(id) + ".json"
}

// ReplayEvidenceKey is where the evidence of a later harvest of a
// verification that has its record is stored: under the first evidence
// document's name (which no id's key can share: safeName writes no '/'),
// by the later terminal's decision time.
func ReplayEvidenceKey(first string, decidedAt time.Time) string {
	return strings.TrimSuffix(first, ".json") + "/replay-" + decidedAt.UTC().Format("20060102T150405.000000000Z") + ".json"
}

// StoredMedia lists the stored objects a record references: its media and
// its attempts' media, each key once, in the record's order.
func StoredMedia(rec contract.Record) []contract.ObjectRef {
	var out []contract.ObjectRef
	seen := map[string]bool{}
	add := func(ms []contract.MediaRef) {
		for _, m := range ms {
			if m.Status == contract.MediaStored && m.Key != "" && !seen[m.Key] {
				seen[m.Key] = true
				out = append(out, m.ObjectRef)
			}
		}
	}
	add(rec.Media)
	for _, at := range rec.Attempts {
		add(at.Media)
	}
	return out
}

// readIndex reads a verification's index entry; false when it has none. An
// entry that cannot be read is reported and ignored: the record it named
// was published, and the terminal at hand gets a record of its own.
func (a *Archiver) readIndex(ctx context.Context, v contract.Vendor, id string) (IndexEntry, bool, error) {
	key := IndexKey(v, id)
	b, err := a.getRetry(ctx, key, 1<<20)
	if errors.Is(err, objstore.ErrNotFound) {
		return IndexEntry{}, false, nil
	}
	if err != nil {
		return IndexEntry{}, false, err
	}
	e, err := ParseIndexEntry(b)
	if err != nil {
		a.m.indexErrors.Inc()
		a.log.Error("index entry unusable; ignored", "key", key)
		return IndexEntry{}, false, nil
	}
	return e, true, nil
}

// putIndex writes an index entry once, counting each failed try by index.
func (a *Archiver) putIndex(ctx context.Context, key, which string, body []byte, v contract.Vendor) (bool, error) {
	count := a.storeFailed("index", true)
	_, existed, err := a.putOnceWith(ctx, key, "index", func() (io.Reader, int64, error) { return bytes.NewReader(body), int64(len(body)), nil },
		contract.ContentTypeJSON, map[string]string{"vendor": string(v)}, func(try int, err error) {
			a.m.indexWriteFailures.WithLabelValues(which).Inc()
			count(try, err)
		})
	return existed, err
}

// indexBizNo writes e under its biz_no, when it has one. It comes before
// the by-id entry: that entry makes the record final, and re-processing
// after it only publishes the stored record again.
func (a *Archiver) indexBizNo(ctx context.Context, e IndexEntry, body []byte) error {
	if e.BizNo == "" {
		return nil
	}
	_, err := a.putIndex(ctx, BizNoIndexKey(e.BizNo, e.Vendor, e.VerificationID), indexBizNoLabel, body, e.Vendor)
	return err
}

// index stores rec beside its evidence document, then the index entries
// naming both (by biz_no, then by id), and returns what is stored.
func (a *Archiver) index(ctx context.Context, t contract.Terminal, rec contract.Record) (final, error) {
	value, err := json.Marshal(rec)
	if err != nil {
		return final{}, errRecord{err}
	}
	sum := sha256.Sum256(value)
	ref := contract.ObjectRef{Key: RecordKey(t.Vendor, t.DecidedAt, t.VerificationID), SHA256: hex.EncodeToString(sum[:]), Size: int64(len(value)), ContentType: contract.ContentTypeJSON}
	_, existed, err := a.putOnceAttrs(ctx, ref.Key, "record", func() (io.Reader, int64, error) { return bytes.NewReader(value), int64(len(value)), nil },
		contract.ContentTypeJSON, map[string]string{"sha256": ref.SHA256, "vendor": string(t.Vendor)})
	if err != nil {
		return final{}, err
	}
	if existed {
		// Stored before a crash: what is stored is what may have been
		// published already, so it is what is published.
		if value, err = a.getRetry(ctx, ref.Key, 64<<20); err != nil {
			return final{}, err
		}
		if err := json.Unmarshal(value, &rec); err != nil {
			return final{}, fmt.Errorf("stored record %s: %w", ref.Key, err)
		}
		sum = sha256.Sum256(value)
		ref.SHA256, ref.Size = hex.EncodeToString(sum[:]), int64(len(value))
	}
	e := IndexEntry{Schema: IndexSchema, Vendor: t.Vendor, VerificationID: t.VerificationID, BizNo: rec.BizNo, RecordID: contract.RecordID(t.Vendor, t.VerificationID),
		Outcome: rec.Outcome, DecidedAt: t.DecidedAt.UTC(), Record: ref, Media: StoredMedia(rec)}
	if rec.Evidence != nil {
		e.Evidence = *rec.Evidence
	}
	eb, err := json.Marshal(e)
	if err != nil {
		return final{}, err
	}
	if err := a.indexBizNo(ctx, e, eb); err != nil {
		return final{}, err
	}
	existed, err = a.putIndex(ctx, IndexKey(t.Vendor, t.VerificationID), indexIDLabel, eb, t.Vendor)
	if err != nil {
		return final{}, err
	}
	if existed {
		// Written meanwhile by another owner of the partition: the entry
		// decides which record is final.
		idx, ok, err := a.readIndex(ctx, t.Vendor, t.VerificationID)
		if err != nil {
			return final{}, err
		}
		if ok && idx.Record.Key != ref.Key {
			return a.stored(ctx, idx)
		}
		eb = nil // the stored entry is the leaf
	}
	if err := a.appendLeaf(ctx, t.Vendor, t.VerificationID, eb); err != nil {
		return final{}, err
	}
	return final{rec: rec, value: value}, nil
}

// stored returns the record an index entry names, as stored. A record
// object that is missing (deleted by hand) is rebuilt from the evidence
// document and stored again. A verification indexed before the biz_no
// index existed gets its biz_no entry here (the by-id entry's bytes).
func (a *Archiver) stored(ctx context.Context, idx IndexEntry) (final, error) {
	// Published again (a crash after the entry, a replay): the entry is
	// appended to the ledger again, in case the first append was lost.
	if err := a.appendLeaf(ctx, idx.Vendor, idx.VerificationID, nil); err != nil {
		return final{}, err
	}
	if idx.BizNo != "" {
		eb, err := json.Marshal(idx)
		if err != nil {
			return final{}, err
		}
		if err := a.indexBizNo(ctx, idx, eb); err != nil {
			return final{}, err
		}
	}
	value, err := a.getRetry(ctx, idx.Record.Key, 64<<20)
	if errors.Is(err, objstore.ErrNotFound) {
		a.m.indexErrors.Inc()
		a.log.Error("indexed record missing; rebuilding it from its evidence document", "record", idx.Record.Key)
		rec, err := a.fromEvidence(ctx, idx.Evidence.Key)
		if err != nil {
			return final{}, err
		}
		if value, err = json.Marshal(rec); err != nil {
			return final{}, errRecord{err}
		}
		if err := a.putOnce(ctx, idx.Record.Key, "record", func() (io.Reader, int64, error) { return bytes.NewReader(value), int64(len(value)), nil },
			contract.ContentTypeJSON, map[string]string{"vendor": string(idx.Vendor)}); err != nil {
			return final{}, err
		}
		return final{rec: rec, value: value}, nil
	}
	if err != nil {
		return final{}, err
	}
	var rec contract.Record
	if err := json.Unmarshal(value, &rec); err != nil {
		return final{}, fmt.Errorf("stored record %s: %w", idx.Record.Key, err)
	}
	a.m.existing.WithLabelValues("record").Inc()
	return final{rec: rec, value: value}, nil
}

// RecordFromEvidence builds the record of a stored evidence document: doc
// is the document's bytes, key its key, archivedAt its archived-at metadata
// (EvidenceArchivedAt). It is how the archiver rebuilds a record after a
// crash, and how the operator command re-derives records from the store:
// the same evidence, archivedAt and mask give the same record, byte for
// byte. mask false gives the full name and ID number.
func RecordFromEvidence(doc []byte, key string, archivedAt time.Time, mask bool) (contract.Record, error) {
	var ev Evidence
	var t contract.Terminal
	if err := json.Unmarshal(doc, &ev); err != nil {
		return contract.Record{}, fmt.Errorf("evidence document %s: %w", key, err)
	}
	if ev.Schema != EvidenceSchema {
		return contract.Record{}, fmt.Errorf("evidence document %s: schema %q, want %s", key, ev.Schema, EvidenceSchema)
	}
	if err := json.Unmarshal(ev.Terminal, &t); err != nil {
		return contract.Record{}, fmt.Errorf("evidence document %s: terminal: %w", key, err)
	}
	sum := sha256.Sum256(doc)
	ref := contract.ObjectRef{Key: key, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(doc)), ContentType: contract.ContentTypeJSON}
	return buildRecord(t, ev, ref, archivedAt, mask), nil
}

// RecordEnvelope is how a record is published: value (the record's stored
// bytes) under its stable ce_id, keyed <vendor>:<id>, timed by its
// archived_at. The archiver and the operator command's replay both use it,
// so a replayed record is the published one, header for header.
func RecordEnvelope(rec contract.Record, value []byte, source string) contract.Envelope {
	return contract.Envelope{ID: contract.RecordID(rec.Vendor, rec.VerificationID), Source: source, Type: contract.TypeRecord, Time: rec.Times.ArchivedAt,
		Key: contract.Key(rec.Vendor, rec.VerificationID), Value: value}
}

// EvidenceArchivedAt is when an evidence document was archived, from its
// stored metadata.
func EvidenceArchivedAt(key string, attrs objstore.Attrs) (time.Time, error) {
	at, err := time.Parse(time.RFC3339Nano, attrs.Metadata["archived-at"])
	if err != nil {
		return time.Time{}, fmt.Errorf("evidence document %s lacks its archived-at", key)
	}
	return at, nil
}

// fromEvidence rebuilds a record from a stored evidence document.
func (a *Archiver) fromEvidence(ctx context.Context, key string) (contract.Record, error) {
	var attrs objstore.Attrs
	if err := retry.Do(ctx, a.retryPolicy(a.storeFailed("", false)), func(int) error {
		var err error
		attrs, err = a.cfg.Store.Attributes(ctx, key)
		return unlessDone(ctx, err)
	}); err != nil {
		return contract.Record{}, err
	}
	b, err := a.getRetry(ctx, key, 1<<30)
	if err != nil {
		return contract.Record{}, err
	}
	archivedAt, err := EvidenceArchivedAt(key, attrs)
	if err != nil {
		return contract.Record{}, err
	}
	return RecordFromEvidence(b, key, archivedAt, !a.cfg.Unmask)
}
