package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// ErrNotInLog is returned for an index entry that is not (yet) a leaf.
var ErrNotInLog = errors.New("not in the log")

// Reader reads a log from the bucket: its checkpoint, leaves, proofs. Every
// hash it returns is checked against the checkpoint it was asked about.
type Reader struct {
	Bucket objstore.Bucket
	// Prefix is the log's prefix in the bucket (DefaultPrefix when "").
	Prefix string
}

func (r Reader) prefix() string {
	if r.Prefix == "" {
		return DefaultPrefix
	}
	return r.Prefix
}

// CheckpointKey is where the latest signed checkpoint is stored.
func (r Reader) CheckpointKey() string { return r.prefix() + "checkpoint" }

// claimKey is where the batch extending a tree of size from is claimed.
func (r Reader) claimKey(from int64) string { return fmt.Sprintf("%ssequence/%020d", r.prefix(), from) }

// MarkerKey is where the leaf index of the by-id index entry at indexKey
// is recorded once it is in the log: the durable entry -> leaf map that
// keeps an entry appended twice from becoming two leaves.
func (r Reader) MarkerKey(indexKey string) string {
	return r.prefix() + "leaf/" + strings.TrimPrefix(indexKey, "index/v1/")
}

// marker is a leaf's entry in the entry -> leaf map.
type marker struct {
	Index       int64  `json:"index"`
	EntrySHA256 string `json:"entry_sha256"`
}

// Checkpoint reads the latest checkpoint and checks its signature; a log
// with none has size 0 and a nil signed note.
func (r Reader) Checkpoint(ctx context.Context, v note.Verifier) (Checkpoint, []byte, error) {
	b, err := getLimited(ctx, r.Bucket, r.CheckpointKey(), 1<<16)
	if errors.Is(err, objstore.ErrNotFound) {
		return Checkpoint{Origin: v.Name()}, nil, nil
	}
	if err != nil {
		return Checkpoint{}, nil, err
	}
	c, err := OpenCheckpoint(b, v)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("%s: %w", r.CheckpointKey(), err)
	}
	return c, b, nil
}

// LeafIndex returns the leaf index of the by-id index entry at indexKey,
// and the SHA-256 of the entry's bytes in the log; ErrNotInLog when the
// entry is not a leaf.
func (r Reader) LeafIndex(ctx context.Context, indexKey string) (int64, string, error) {
	b, err := getLimited(ctx, r.Bucket, r.MarkerKey(indexKey), 4096)
	if errors.Is(err, objstore.ErrNotFound) {
		return 0, "", fmt.Errorf("%s: %w", indexKey, ErrNotInLog)
	}
	if err != nil {
		return 0, "", err
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil || m.Index < 0 {
		return 0, "", fmt.Errorf("%s: unreadable leaf marker", r.MarkerKey(indexKey))
	}
	return m.Index, m.EntrySHA256, nil
}

// Entries calls fn with the leaves [from, to) of the tree cp, in order,
// read from the entry bundles. A bundle whose entries do not hash to the
// tree's leaves is an error.
func (r Reader) Entries(ctx context.Context, cp Checkpoint, from, to int64, fn func(n int64, data []byte) error) error {
	if from < 0 || to > cp.Size || from > to {
		return fmt.Errorf("entries [%d, %d) outside a tree of size %d", from, to, cp.Size)
	}
	ts := newTileStore(ctx, r.Bucket, r.prefix())
	hr := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: cp.Hash}, ts)
	for start := from &^ (1<<TileHeight - 1); start < to; start += 1 << TileHeight {
		w := min(int64(1<<TileHeight), cp.Size-start)
		t := tlog.Tile{H: TileHeight, L: -1, N: start >> TileHeight, W: int(w)}
		b, err := ts.get(TilePath(t), w*(maxEntry+2))
		if err != nil {
			return fmt.Errorf("entry bundle %s: %w", TilePath(t), err)
		}
		es, err := splitBundle(b)
		if err != nil {
			return fmt.Errorf("%s: %w", TilePath(t), err)
		}
		if int64(len(es)) != w {
			return fmt.Errorf("entry bundle %s: %d entries, want %d", TilePath(t), len(es), w)
		}
		idx := make([]int64, w)
		for i := range idx {
			idx[i] = tlog.StoredHashIndex(0, start+int64(i))
		}
		hs, err := hr.ReadHashes(idx)
		if err != nil {
			return fmt.Errorf("leaf hashes of %s: %w", TilePath(t), err)
		}
		for i, e := range es {
			n := start + int64(i)
			if n < from || n >= to {
				continue
			}
			if tlog.RecordHash(e) != hs[i] {
				return fmt.Errorf("entry %d in %s does not hash to its leaf", n, TilePath(t))
			}
			if err := fn(n, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Prove returns the inclusion proof of leaf n in the tree cp, from tiles
// checked against cp.
func (r Reader) Prove(ctx context.Context, cp Checkpoint, n int64) (tlog.RecordProof, error) {
	hr := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: cp.Hash}, newTileStore(ctx, r.Bucket, r.prefix()))
	return tlog.ProveRecord(cp.Size, n, hr)
}

// ProveConsistency returns the proof that the tree older is a prefix of
// the tree newer.
func (r Reader) ProveConsistency(ctx context.Context, newer, older Checkpoint) (tlog.TreeProof, error) {
	hr := tlog.TileHashReader(tlog.Tree{N: newer.Size, Hash: newer.Hash}, newTileStore(ctx, r.Bucket, r.prefix()))
	return tlog.ProveTree(newer.Size, older.Size, hr)
}

// EntrySHA256 is the hex SHA-256 of an entry's bytes.
func EntrySHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
