package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// DefaultPrefix is where the log lives in the bucket.
const DefaultPrefix = "ledger/v1/"

// TileHeight is the tiles' height: C2SP tlog-tiles fixes 256 hashes (or
// entries) per full tile.
const TileHeight = 8

// TilePath is a tile's path under the log's prefix, as C2SP tlog-tiles
// names it: tile/<L>/<N>[.p/<W>] for hashes, tile/entries/<N>[.p/<W>] for
// an entry bundle (t.L == -1). N is written in groups of three digits, the
// groups but the last prefixed with x (tlog's and C2SP's shared encoding).
func TilePath(t tlog.Tile) string {
	p := t.Path() // tile/<H>/<L or data>/<N>[.p/<W>]
	p = strings.TrimPrefix(p, fmt.Sprintf("tile/%d/", t.H))
	if t.L == -1 {
		p = "entries" + strings.TrimPrefix(p, "data")
	}
	return "tile/" + p
}

// maxEntry bounds one entry: an entry bundle prefixes each with its length
// in two bytes.
const maxEntry = 1<<16 - 1

// appendBundle appends an entry to an entry bundle.
func appendBundle(b, entry []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(entry)))
	return append(b, entry...)
}

// splitBundle splits an entry bundle into its entries.
func splitBundle(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("entry bundle: truncated length")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, errors.New("entry bundle: truncated entry")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

// tileStore reads a log's tiles from the bucket for tlog.TileHashReader,
// caching what it read (a reader lives for one batch or one proof).
type tileStore struct {
	ctx    context.Context
	b      objstore.Bucket
	prefix string
	cache  map[tlog.Tile][]byte
}

func newTileStore(ctx context.Context, b objstore.Bucket, prefix string) *tileStore {
	return &tileStore{ctx: ctx, b: b, prefix: prefix, cache: map[tlog.Tile][]byte{}}
}

func (s *tileStore) Height() int { return TileHeight }

func (s *tileStore) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if b, ok := s.cache[t]; ok {
			out[i] = b
			continue
		}
		b, err := s.get(TilePath(t), int64(t.W)*tlog.HashSize)
		if err != nil {
			return nil, err
		}
		if len(b) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %s: %d bytes, want %d", TilePath(t), len(b), t.W*tlog.HashSize)
		}
		s.cache[t] = b
		out[i] = b
	}
	return out, nil
}

func (s *tileStore) SaveTiles([]tlog.Tile, [][]byte) {}

// get reads one object of the log, at most limit bytes (more is an error).
func (s *tileStore) get(path string, limit int64) ([]byte, error) {
	return getLimited(s.ctx, s.b, s.prefix+path, limit)
}

var errTooLarge = errors.New("larger than allowed")

// getLimited reads key, refusing more than limit bytes.
func getLimited(ctx context.Context, b objstore.Bucket, key string, limit int64) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes)", key, errTooLarge, limit)
	}
	return body, nil
}

// put writes one object of the log.
func put(ctx context.Context, b objstore.Bucket, key string, body []byte, contentType string) error {
	return b.Put(ctx, key, bytes.NewReader(body), int64(len(body)), contentType, nil)
}

// overlay reads the hashes a batch computed, and the rest from the tiles of
// the tree the batch extends.
type overlay struct {
	added map[int64]tlog.Hash
	base  tlog.HashReader
}

func (o *overlay) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var need []int64
	var at []int
	for i, x := range indexes {
		if h, ok := o.added[x]; ok {
			out[i] = h
			continue
		}
		need = append(need, x)
		at = append(at, i)
	}
	if len(need) == 0 {
		return out, nil
	}
	if o.base == nil {
		return nil, errors.New("log: hash outside the batch of an empty tree")
	}
	hs, err := o.base.ReadHashes(need)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = hs[j]
		o.added[need[j]] = hs[j] // checked against the tree once: kept for the batch
	}
	return out, nil
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the
// first error.
func parallel(n, workers int, fn func(i int) error) error {
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
