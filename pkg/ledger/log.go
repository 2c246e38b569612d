package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Leaf is one leaf to append: the by-id index entry's key and its stored
// bytes (the leaf's data).
type Leaf struct {
	Key  string
	Data []byte
}

// Config configures a Log.
type Config struct {
	Bucket objstore.Bucket
	Prefix string // DefaultPrefix when ""
	Signer note.Signer
	// Verifier is the signer's public key: checkpoints and claims read
	// back from the bucket are checked with it.
	Verifier note.Verifier
}

// Log appends to the tiled log in the bucket. One process extends a log at
// a time (the leaves topic's only consumer); a second one, or a stale one,
// cannot fork it: every batch is first claimed by creating
// sequence/<old size> with If-None-Match, and only the claim's winner
// writes the batch's tiles. A Log is not safe for concurrent use.
type Log struct {
	r      Reader
	signer note.Signer
	v      note.Verifier
	tree   Checkpoint
	signed []byte
	// stale, when set, is told of each checkpoint not written because the
	// stored one is of a larger tree.
	stale func(stored, ours int64)
}

// claim is a batch's write-ahead record: the entries that extend the tree
// of size From to size To and the signed checkpoint of the result. It is
// created before any tile, so that a crash anywhere after it is finished
// by whoever loads the log next, with the same bytes.
type claim struct {
	From       int64    `json:"from"`
	To         int64    `json:"to"`
	Checkpoint []byte   `json:"checkpoint"`
	Keys       []string `json:"keys"`
	Entries    [][]byte `json:"entries"`
}

// ErrContended is returned by Append when other writers claimed every try.
var ErrContended = errors.New("log extended by another writer on every try")

// Open loads the log's state: the latest checkpoint, then every claimed
// batch beyond it, finished (tiles, markers, checkpoint) in order.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Bucket == nil || cfg.Signer == nil || cfg.Verifier == nil {
		return nil, errors.New("ledger log: a bucket, a signer and its verifier are required")
	}
	if cfg.Signer.Name() != cfg.Verifier.Name() || cfg.Signer.KeyHash() != cfg.Verifier.KeyHash() {
		return nil, errors.New("ledger log: the public key is not the signing key's")
	}
	l := &Log{r: Reader{Bucket: cfg.Bucket, Prefix: cfg.Prefix}, signer: cfg.Signer, v: cfg.Verifier}
	return l, l.Reload(ctx)
}

// Reader returns the log's reader.
func (l *Log) Reader() Reader { return l.r }

// Checkpoint returns the latest checkpoint and its signed note (nil for an
// empty log).
func (l *Log) Checkpoint() (Checkpoint, []byte) { return l.tree, l.signed }

// Reload reads the log's state from the bucket again, finishing claimed
// batches.
func (l *Log) Reload(ctx context.Context) error {
	cp, signed, err := l.r.Checkpoint(ctx, l.v)
	if err != nil {
		return err
	}
	for {
		c, ok, err := l.readClaim(ctx, cp.Size)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		next, err := OpenCheckpoint(c.Checkpoint, l.v)
		if err != nil {
			return fmt.Errorf("claim %s: %w", l.r.claimKey(cp.Size), err)
		}
		ov, root, err := l.build(ctx, cp, c.Entries)
		if err != nil {
			return fmt.Errorf("claim %s: %w", l.r.claimKey(cp.Size), err)
		}
		if root != next.Hash || next.Size != c.To {
			return fmt.Errorf("claim %s: its entries do not give its checkpoint", l.r.claimKey(cp.Size))
		}
		if err := l.write(ctx, cp, c, ov); err != nil {
			return err
		}
		cp, signed = next, c.Checkpoint
	}
	l.tree, l.signed = cp, signed
	return nil
}

func (l *Log) readClaim(ctx context.Context, from int64) (claim, bool, error) {
	b, err := getLimited(ctx, l.r.Bucket, l.r.claimKey(from), 1<<30)
	if errors.Is(err, objstore.ErrNotFound) {
		return claim{}, false, nil
	}
	if err != nil {
		return claim{}, false, err
	}
	var c claim
	if err := json.Unmarshal(b, &c); err != nil {
		return claim{}, false, fmt.Errorf("claim %s: %w", l.r.claimKey(from), err)
	}
	if c.From != from || c.To != from+int64(len(c.Entries)) || len(c.Keys) != len(c.Entries) {
		return claim{}, false, fmt.Errorf("claim %s: inconsistent sizes", l.r.claimKey(from))
	}
	return c, true, nil
}

// Append makes the leaves not yet in the log (by index key; repeats in
// leaves too) leaves of it, in order, and signs the new checkpoint. It
// returns how many it appended. When another writer extended the log
// meanwhile, its batch is finished and the leaves are tried again on top.
func (l *Log) Append(ctx context.Context, leaves []Leaf) (int, error) {
	for range 5 {
		fresh, err := l.fresh(ctx, leaves)
		if err != nil || len(fresh) == 0 {
			return 0, err
		}
		prev := l.tree
		c := claim{From: prev.Size, To: prev.Size + int64(len(fresh))}
		for _, f := range fresh {
			c.Keys = append(c.Keys, f.Key)
			c.Entries = append(c.Entries, f.Data)
		}
		ov, root, err := l.build(ctx, prev, c.Entries)
		if err != nil {
			return 0, err
		}
		next := Checkpoint{Origin: l.v.Name(), Size: c.To, Hash: root}
		if c.Checkpoint, err = Sign(next, l.signer); err != nil {
			return 0, err
		}
		body, err := json.Marshal(c)
		if err != nil {
			return 0, err
		}
		err = l.r.Bucket.Create(ctx, l.r.claimKey(c.From), bytes.NewReader(body), int64(len(body)), "application/json", nil)
		if errors.Is(err, objstore.ErrExists) {
			if err := l.Reload(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if err := l.write(ctx, prev, c, ov); err != nil {
			// Claimed: whoever loads the log next finishes it.
			return 0, err
		}
		l.tree, l.signed = next, c.Checkpoint
		return len(fresh), nil
	}
	return 0, ErrContended
}

// storeWorkers bounds the store requests a batch makes at once (the map
// lookups and writes, one per leaf).
const storeWorkers = 16

// fresh returns the leaves that are not in the log, each key once, in
// their order.
func (l *Log) fresh(ctx context.Context, leaves []Leaf) ([]Leaf, error) {
	var once []Leaf
	seen := map[string]bool{}
	for _, lf := range leaves {
		if seen[lf.Key] {
			continue
		}
		seen[lf.Key] = true
		if len(lf.Data) > maxEntry {
			return nil, fmt.Errorf("%s: entry of %d bytes is larger than a log entry may be (%d)", lf.Key, len(lf.Data), maxEntry)
		}
		once = append(once, lf)
	}
	logged := make([]bool, len(once))
	if err := parallel(len(once), storeWorkers, func(i int) error {
		_, _, err := l.r.LeafIndex(ctx, once[i].Key)
		if err == nil {
			logged[i] = true
			return nil
		}
		if errors.Is(err, ErrNotInLog) {
			return nil
		}
		return err
	}); err != nil {
		return nil, err
	}
	var out []Leaf
	for i, lf := range once {
		if !logged[i] {
			out = append(out, lf)
		}
	}
	return out, nil
}

// build computes the stored hashes of entries appended to the tree prev,
// and the new tree's root.
func (l *Log) build(ctx context.Context, prev Checkpoint, entries [][]byte) (*overlay, tlog.Hash, error) {
	ov := &overlay{added: map[int64]tlog.Hash{}}
	if prev.Size > 0 {
		ov.base = tlog.TileHashReader(tlog.Tree{N: prev.Size, Hash: prev.Hash}, newTileStore(ctx, l.r.Bucket, l.r.prefix()))
	}
	for i, e := range entries {
		n := prev.Size + int64(i)
		hs, err := tlog.StoredHashes(n, e, ov)
		if err != nil {
			return nil, tlog.Hash{}, fmt.Errorf("hashes of leaf %d: %w", n, err)
		}
		at := tlog.StoredHashIndex(0, n)
		for j, h := range hs {
			ov.added[at+int64(j)] = h
		}
	}
	root, err := tlog.TreeHash(prev.Size+int64(len(entries)), ov)
	return ov, root, err
}

// write stores a claimed batch: entry bundles, hash tiles, the entry ->
// leaf markers, then the checkpoint. Every write is the same bytes
// whoever makes it, so finishing a batch twice is harmless.
func (l *Log) write(ctx context.Context, prev Checkpoint, c claim, ov *overlay) error {
	b, p := l.r.Bucket, l.r.prefix()
	tiles := tlog.NewTiles(TileHeight, c.From, c.To)
	for _, t := range tiles {
		if t.L != 0 {
			continue
		}
		start := t.N << TileHeight
		var bundle []byte
		if start < c.From {
			old := tlog.Tile{H: TileHeight, L: -1, N: t.N, W: int(c.From - start)}
			ob, err := getLimited(ctx, b, p+TilePath(old), int64(old.W)*(maxEntry+2))
			if err != nil {
				return fmt.Errorf("entry bundle %s: %w", TilePath(old), err)
			}
			if es, err := splitBundle(ob); err != nil || len(es) != old.W {
				return fmt.Errorf("entry bundle %s: not %d entries", TilePath(old), old.W)
			}
			bundle = ob
		}
		for n := max(start, c.From); n < start+int64(t.W); n++ {
			bundle = appendBundle(bundle, c.Entries[n-c.From])
		}
		if err := put(ctx, b, p+TilePath(tlog.Tile{H: TileHeight, L: -1, N: t.N, W: t.W}), bundle, "application/octet-stream"); err != nil {
			return err
		}
	}
	for _, t := range tiles {
		data, err := tlog.ReadTileData(t, ov)
		if err != nil {
			return fmt.Errorf("tile %s: %w", TilePath(t), err)
		}
		if err := put(ctx, b, p+TilePath(t), data, "application/octet-stream"); err != nil {
			return err
		}
	}
	if err := parallel(len(c.Keys), storeWorkers, func(i int) error {
		m, _ := json.Marshal(marker{Index: c.From + int64(i), EntrySHA256: EntrySHA256(c.Entries[i])})
		return put(ctx, b, l.r.MarkerKey(c.Keys[i]), m, "application/json")
	}); err != nil {
		return err
	}
	return l.storeCheckpoint(ctx, c.To, c.Checkpoint)
}

// storeCheckpoint replaces the stored checkpoint with signed, of a tree of
// size leaves, unless the stored one is of a tree as large or larger (a
// stale writer finishing an old batch late is then refused, and told to
// l.stale). On a store that can compare and swap (objstore.Swapper) the
// replacement is conditional on the checkpoint read, so that no writer can
// put back an older checkpoint between another's read and write.
func (l *Log) storeCheckpoint(ctx context.Context, size int64, signed []byte) error {
	b, key := l.r.Bucket, l.r.CheckpointKey()
	sw, _ := b.(objstore.Swapper)
	for range 10 {
		stored, etag, err := l.readCheckpoint(ctx, sw)
		if err != nil {
			return err
		}
		if stored >= size {
			if stored > size && l.stale != nil {
				l.stale(stored, size)
			}
			return nil
		}
		switch {
		case stored < 0:
			err = b.Create(ctx, key, bytes.NewReader(signed), int64(len(signed)), checkpointType, nil)
		case etag == "":
			return put(ctx, b, key, signed, checkpointType) // no compare-and-swap: checked, not atomic
		default:
			err = sw.PutIfMatch(ctx, key, signed, checkpointType, etag)
		}
		if errors.Is(err, objstore.ErrExists) || errors.Is(err, objstore.ErrChanged) {
			continue // another writer stored one meanwhile: compare again
		}
		return err
	}
	return fmt.Errorf("%s: replaced by other writers on every try", key)
}

const checkpointType = "text/plain; charset=utf-8"

// readCheckpoint returns the stored checkpoint's tree size (-1 when there
// is none) and, through sw when the store has it, its entity tag.
func (l *Log) readCheckpoint(ctx context.Context, sw objstore.Swapper) (int64, string, error) {
	var body []byte
	var etag string
	var err error
	if sw != nil {
		body, etag, err = sw.GetWithETag(ctx, l.r.CheckpointKey(), 1<<16)
	}
	if sw == nil || errors.Is(err, errors.ErrUnsupported) {
		etag = ""
		body, err = getLimited(ctx, l.r.Bucket, l.r.CheckpointKey(), 1<<16)
	}
	if errors.Is(err, objstore.ErrNotFound) {
		return -1, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	cp, err := OpenCheckpoint(body, l.v)
	if err != nil {
		return 0, "", fmt.Errorf("stored checkpoint: %w", err)
	}
	return cp.Size, etag, nil
}
