package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// ErrNotIndexed is returned by Export for a verification without an index
// entry.
var ErrNotIndexed = errors.New("not in the index")

// Export writes the bundle of one verification to w: its index entry as
// the log holds it, the inclusion proof to the latest checkpoint (checked
// with v), and every object the entry names, read from the store. by and
// at name who exported it and when (the manifest's). The caller checks the
// bundle (VerifyBundle) before handing it over. The checkpoint's RFC 3161
// time-stamp token goes with it when the log has one. extra files (the audit
// trail) are written as given: the proof does not cover them.
func Export(ctx context.Context, r Reader, v note.Verifier, vendor contract.Vendor, id, by string, at time.Time, extra map[string][]byte, w io.Writer) (archiver.IndexEntry, error) {
	key := archiver.IndexKey(vendor, id)
	stored, err := getLimited(ctx, r.Bucket, key, maxEntry)
	if errors.Is(err, objstore.ErrNotFound) {
		return archiver.IndexEntry{}, fmt.Errorf("%s: %w", contract.Key(vendor, id), ErrNotIndexed)
	}
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	n, _, err := r.LeafIndex(ctx, key)
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	cp, signed, err := r.Checkpoint(ctx, v)
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	if n >= cp.Size {
		return archiver.IndexEntry{}, fmt.Errorf("%s is leaf %d, beyond the latest checkpoint's %d leaves: try again after the next checkpoint", key, n, cp.Size)
	}
	var leaf []byte
	if err := r.Entries(ctx, cp, n, n+1, func(_ int64, data []byte) error { leaf = data; return nil }); err != nil {
		return archiver.IndexEntry{}, err
	}
	if !bytes.Equal(leaf, stored) {
		return archiver.IndexEntry{}, fmt.Errorf("%s differs from leaf %d of the log: the stored entry was changed after it was logged", key, n)
	}
	e, err := archiver.ParseIndexEntry(leaf)
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	proof, err := r.Prove(ctx, cp, n)
	if err != nil {
		return archiver.IndexEntry{}, err
	}
	bw := NewBundleWriter(w)
	if err := bw.Proof(leaf, n, proof, cp, signed); err != nil {
		return archiver.IndexEntry{}, err
	}
	if token, err := r.Timestamp(ctx, cp.Size); err != nil {
		return archiver.IndexEntry{}, err
	} else if token != nil {
		if err := bw.Timestamp(token); err != nil {
			return archiver.IndexEntry{}, err
		}
	}
	if err := exportObjects(ctx, r.Bucket, e, bw); err != nil {
		return archiver.IndexEntry{}, err
	}
	for name, body := range extra {
		if err := bw.file(name, body); err != nil {
			return archiver.IndexEntry{}, err
		}
	}
	return e, bw.Close(e, key, by, at)
}

// exportObjects copies the record, the evidence document and every media
// object the entry (or, for entries older than their media list, the
// record) names from the store into the bundle, each once.
func exportObjects(ctx context.Context, b objstore.Bucket, e archiver.IndexEntry, bw *BundleWriter) error {
	copyObject := func(key string) ([]byte, error) {
		rc, err := b.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		defer rc.Close()
		var keep bytes.Buffer
		var src io.Reader = rc
		if key == e.Record.Key {
			src = io.TeeReader(rc, &keep)
		}
		return keep.Bytes(), bw.Object(key, src)
	}
	recJSON, err := copyObject(e.Record.Key)
	if err != nil {
		return err
	}
	if _, err := copyObject(e.Evidence.Key); err != nil {
		return err
	}
	media := e.Media
	if media == nil {
		var rec contract.Record
		if err := json.Unmarshal(recJSON, &rec); err != nil {
			return fmt.Errorf("record %s: %w", e.Record.Key, err)
		}
		media = archiver.StoredMedia(rec)
	}
	seen := map[string]bool{e.Record.Key: true, e.Evidence.Key: true}
	for _, m := range media {
		if seen[m.Key] {
			continue
		}
		seen[m.Key] = true
		if _, err := copyObject(m.Key); err != nil {
			return err
		}
	}
	return nil
}
