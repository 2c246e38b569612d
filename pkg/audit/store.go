package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// ErrMismatch is returned when a stored object's bytes differ from the
// SHA-256 its index entry or record names: the evidence was altered, and
// nothing of it is shown as if it were true.
var ErrMismatch = errors.New("stored object does not match its recorded SHA-256")

// ErrNoIdentity is returned by Identity for a verification whose evidence
// names nobody (an outcome without a vendor answer, an answer without the
// identity).
var ErrNoIdentity = errors.New("the evidence holds no identity")

// errNoEntry is load's answer for an index key the store does not hold.
var errNoEntry = fmt.Errorf("no index entry: %w", ErrNotFound)

// missingError is an object an index entry or record names that the store
// does not hold (deleted by hand, or expired by a lifecycle rule). It is
// ErrMissing, ErrNotFound and objstore.ErrNotFound: trying again does not
// help.
type missingError struct {
	what, key string
	err       error
}

func (e *missingError) Error() string   { return e.what + " " + e.key + " is not in the store" }
func (e *missingError) Unwrap() []error { return []error{ErrMissing, ErrNotFound, e.err} }

// storeErr maps the store's not-found answer for key to a missingError
// and leaves any other error as it is.
func storeErr(what, key string, err error) error {
	if errors.Is(err, objstore.ErrNotFound) {
		return &missingError{what: what, key: key, err: err}
	}
	return err
}

// Limits on what is read into memory: index entries and records are a few
// KB, evidence documents at most tens of MB (their blobs are objects).
const (
	maxEntry    = 1 << 20
	maxRecord   = 64 << 20
	maxEvidence = 1 << 30
)

// Store is the Finder over the evidence store the archiver writes: index
// entries (archiver.IndexKey, archiver.BizNoIndexKey), records and
// evidence documents. It only reads.
type Store struct {
	b objstore.Bucket
}

var _ Finder = (*Store)(nil)

// NewStore returns a Finder over b.
func NewStore(b objstore.Bucket) *Store { return &Store{b: b} }

// Get implements Finder.
func (s *Store) Get(ctx context.Context, v contract.Vendor, id string) (Verification, error) {
	if v != contract.Megvii && v != contract.Baidu {
		return Verification{}, fmt.Errorf("vendor %q: %w", v, ErrNotFound)
	}
	return s.load(ctx, archiver.IndexKey(v, id))
}

// ByBizNo implements Finder. Every entry under the biz_no's prefix and its
// by-id entry are read (small objects); records only of the verifications
// returned.
func (s *Store) ByBizNo(ctx context.Context, bizNo string, limit int) ([]Verification, int, error) {
	if bizNo == "" {
		return nil, 0, nil
	}
	keys, err := objstore.Keys(ctx, s.b, archiver.BizNoPrefix(bizNo))
	if err != nil {
		return nil, 0, err
	}
	entries := make([]archiver.IndexEntry, 0, len(keys))
	for _, k := range keys {
		// A biz_no entry only tells which verification to load: the by-id
		// entry decides which record is final. Two owners of a partition
		// racing on terminals of different days can leave the biz_no entry
		// of the record that lost (written once, before the by-id entry),
		// and an entry without its by-id entry names a record that was
		// never published.
		b, err := s.read(ctx, k, maxEntry)
		if errors.Is(err, objstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		listed, err := archiver.ParseIndexEntry(b)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", k, err)
		}
		if listed.BizNo != bizNo { // a hash collision, or an entry copied by hand
			continue
		}
		e, err := s.entry(ctx, archiver.IndexKey(listed.Vendor, listed.VerificationID))
		if errors.Is(err, errNoEntry) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		if e.BizNo != bizNo {
			continue
		}
		entries = append(entries, e)
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if !a.DecidedAt.Equal(b.DecidedAt) {
			return a.DecidedAt.Before(b.DecidedAt)
		}
		if a.Vendor != b.Vendor {
			return a.Vendor < b.Vendor
		}
		return a.VerificationID < b.VerificationID
	})
	total := len(entries)
	if limit > 0 && len(entries) > limit {
		entries = entries[:limit]
	}
	out := make([]Verification, 0, len(entries))
	for _, e := range entries {
		v, err := s.record(ctx, e)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, v)
	}
	return out, total, nil
}

// load reads the entry at key and the record it names, checked against
// the entry's SHA-256.
func (s *Store) load(ctx context.Context, key string) (Verification, error) {
	e, err := s.entry(ctx, key)
	if err != nil {
		return Verification{}, err
	}
	return s.record(ctx, e)
}

// entry reads the index entry at key; errNoEntry when there is none.
func (s *Store) entry(ctx context.Context, key string) (archiver.IndexEntry, error) {
	b, err := s.read(ctx, key, maxEntry)
	if errors.Is(err, objstore.ErrNotFound) {
		return archiver.IndexEntry{}, errNoEntry
	}
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	e, err := archiver.ParseIndexEntry(b)
	if err != nil {
		return archiver.IndexEntry{}, fmt.Errorf("%s: %w", key, err)
	}
	return e, nil
}

// record reads the record e names, checked against e's SHA-256.
func (s *Store) record(ctx context.Context, e archiver.IndexEntry) (Verification, error) {
	rb, err := s.read(ctx, e.Record.Key, maxRecord)
	if err != nil {
		return Verification{}, fmt.Errorf("%s:%s: %w", e.Vendor, e.VerificationID, storeErr("record", e.Record.Key, err))
	}
	if err := checkSum(rb, e.Record.SHA256); err != nil {
		return Verification{}, fmt.Errorf("record %s: %w", e.Record.Key, err)
	}
	var rec contract.Record
	if err := json.Unmarshal(rb, &rec); err != nil {
		return Verification{}, fmt.Errorf("record %s: %w", e.Record.Key, err)
	}
	return Verification{Index: e, Record: rec, RecordJSON: rb}, nil
}

func (s *Store) read(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, err := s.b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return b, nil
}

func checkSum(b []byte, want string) error {
	if want == "" {
		return nil
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != want {
		return ErrMismatch
	}
	return nil
}

// Evidence reads a verification's evidence document, checked against its
// SHA-256, with its stored attributes.
func (s *Store) Evidence(ctx context.Context, v Verification) ([]byte, objstore.Attrs, error) {
	ref := v.Index.Evidence
	attrs, err := s.b.Attributes(ctx, ref.Key)
	if err != nil {
		return nil, objstore.Attrs{}, fmt.Errorf("evidence document %s: %w", ref.Key, storeErr("evidence document", ref.Key, err))
	}
	doc, err := s.read(ctx, ref.Key, maxEvidence)
	if err != nil {
		return nil, objstore.Attrs{}, fmt.Errorf("evidence document %s: %w", ref.Key, storeErr("evidence document", ref.Key, err))
	}
	if err := checkSum(doc, ref.SHA256); err != nil {
		return nil, objstore.Attrs{}, fmt.Errorf("evidence document %s: %w", ref.Key, err)
	}
	return doc, attrs, nil
}

// Identity implements Finder: the record re-derived, unmasked, from the
// evidence document by the archiver's own code.
func (s *Store) Identity(ctx context.Context, v Verification) (contract.Identity, error) {
	doc, attrs, err := s.Evidence(ctx, v)
	if err != nil {
		return contract.Identity{}, err
	}
	at, err := archiver.EvidenceArchivedAt(v.Index.Evidence.Key, attrs)
	if err != nil {
		return contract.Identity{}, err
	}
	rec, err := archiver.RecordFromEvidence(doc, v.Index.Evidence.Key, at, false)
	if err != nil {
		return contract.Identity{}, err
	}
	if rec.Identity == nil {
		return contract.Identity{}, ErrNoIdentity
	}
	return *rec.Identity, nil
}

// Objects lists what a verification references, each key once: its
// evidence document, its record, then its stored media (the record's and
// its attempts'), with the SHA-256 each must have.
func Objects(v Verification) []contract.ObjectRef {
	out := []contract.ObjectRef{v.Index.Evidence, v.Index.Record}
	seen := map[string]bool{v.Index.Evidence.Key: true, v.Index.Record.Key: true}
	for _, m := range archiver.StoredMedia(v.Record) {
		if !seen[m.Key] {
			seen[m.Key] = true
			out = append(out, m)
		}
	}
	return out
}

// Open implements Finder. The object's bytes are checked against the
// SHA-256 the verification names for it as they are read: a reader that
// reaches the end of altered bytes gets ErrMismatch instead of io.EOF.
func (s *Store) Open(ctx context.Context, v Verification, key string) (io.ReadCloser, objstore.Attrs, error) {
	var ref *contract.ObjectRef
	for _, o := range Objects(v) {
		if o.Key == key {
			ref = &o
			break
		}
	}
	if ref == nil || key == "" {
		return nil, objstore.Attrs{}, ErrNotFound
	}
	// The reference names the object's size and type as stored: no HEAD
	// unless it lacks them. What is read is checked against its SHA-256.
	attrs := objstore.Attrs{Size: ref.Size, ContentType: ref.ContentType}
	if ref.Size <= 0 || ref.ContentType == "" {
		var err error
		if attrs, err = s.b.Attributes(ctx, key); err != nil {
			return nil, objstore.Attrs{}, storeErr("object", key, err)
		}
	}
	rc, err := s.b.Get(ctx, key)
	if err != nil {
		return nil, objstore.Attrs{}, storeErr("object", key, err)
	}
	if ref.SHA256 == "" {
		return rc, attrs, nil
	}
	return &checkedReader{rc: rc, h: sha256.New(), want: ref.SHA256}, attrs, nil
}

// checkedReader hashes what it reads and fails at the end on a mismatch.
type checkedReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.h.Write(p[:n])
	if errors.Is(err, io.EOF) && hex.EncodeToString(c.h.Sum(nil)) != c.want {
		return n, ErrMismatch
	}
	return n, err
}

func (c *checkedReader) Close() error { return c.rc.Close() }
