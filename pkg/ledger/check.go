package ledger

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/faceharvest/faceharvest/pkg/archiver"
	"github.com/faceharvest/faceharvest/pkg/contract"
	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// CheckReport is what Check found. Every list is sorted.
type CheckReport struct {
	Checkpoint Checkpoint `json:"-"`
	TreeSize   int64      `json:"tree_size"`
	Root       string     `json:"root"`
	Indexed    int        `json:"indexed"` // by-id index entries in the store
	// Missing are index entries that are not leaves (yet: the newest may
	// wait for the next checkpoint).
	Missing []string `json:"missing"`
	// Repeated are entries that are more than one leaf.
	Repeated []string `json:"repeated"`
	// Changed are index entries whose stored bytes differ from their leaf.
	Changed []string `json:"changed"`
	// Orphans are leaves whose index entry, record, evidence document or a
	// media object is not in the store (or has another size), as
	// "<index key>: <what>".
	Orphans []string `json:"orphans"`
}

// OK says whether every index entry is exactly one leaf and every leaf
// has its objects.
func (r CheckReport) OK() bool {
	return len(r.Missing)+len(r.Repeated)+len(r.Changed)+len(r.Orphans) == 0
}

// Check recomputes the log from its tiles and entry bundles (every entry
// must hash to its leaf, and every tile to the signed checkpoint's root),
// then compares it with the store's by-id index: entries missing from the
// log, entries logged more than once, entries changed since, and leaves
// whose objects are gone.
func Check(ctx context.Context, r Reader, v note.Verifier) (CheckReport, error) {
	cp, _, err := r.Checkpoint(ctx, v)
	if err != nil {
		return CheckReport{}, err
	}
	rep := CheckReport{Checkpoint: cp, TreeSize: cp.Size, Root: cp.Hash.String()}
	leaves := map[string]int{}
	var repeated, orphans, changed []string
	exists := func(ref contract.ObjectRef) string {
		a, err := r.Bucket.Attributes(ctx, ref.Key)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			return ref.Key + " is missing"
		case err != nil:
			return ref.Key + ": " + err.Error()
		case ref.Size > 0 && a.Size != ref.Size:
			return fmt.Sprintf("%s has %d bytes, the entry names %d", ref.Key, a.Size, ref.Size)
		}
		return ""
	}
	if err := r.Entries(ctx, cp, 0, cp.Size, func(n int64, data []byte) error {
		e, err := archiver.ParseIndexEntry(data)
		if err != nil {
			orphans = append(orphans, fmt.Sprintf("leaf %d: not an index entry", n))
			return nil
		}
		key := archiver.IndexKey(e.Vendor, e.VerificationID)
		if leaves[key]++; leaves[key] == 2 {
			repeated = append(repeated, key)
		}
		stored, err := getLimited(ctx, r.Bucket, key, maxEntry)
		switch {
		case errors.Is(err, objstore.ErrNotFound):
			orphans = append(orphans, key+": the index entry is missing")
			return nil
		case err != nil:
			return err
		case string(stored) != string(data):
			changed = append(changed, key)
		}
		refs := append([]contract.ObjectRef{e.Record, e.Evidence}, e.Media...)
		for _, ref := range refs {
			if why := exists(ref); why != "" {
				orphans = append(orphans, key+": "+why)
			}
		}
		return nil
	}); err != nil {
		return rep, err
	}
	var missing []string
	if err := r.Bucket.Iter(ctx, archiver.IndexByID, func(k string) error {
		if !strings.HasSuffix(k, ".json") {
			return nil
		}
		rep.Indexed++
		if leaves[k] == 0 {
			missing = append(missing, k)
		}
		return nil
	}); err != nil {
		return rep, err
	}
	sort.Strings(missing)
	sort.Strings(repeated)
	sort.Strings(changed)
	sort.Strings(orphans)
	rep.Missing, rep.Repeated, rep.Changed, rep.Orphans = missing, repeated, changed, orphans
	return rep, nil
}
