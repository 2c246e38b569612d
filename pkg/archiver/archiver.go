// Package archiver turns what the harvester fetched into what users keep:
// every image and video in the object store under content-addressed keys, an
// evidence document per verification (the vendors' responses with each blob
// replaced by its object reference), and one normalized record per
// verification on the results topic, published only once everything it
// references exists in the store.
//
// Each vendor response is archived as it arrives: its media are stored, then
// the response itself (blobs replaced by references, plus the facts the
// record needs) is stored as a "part" under a key derived from its ce_id, and
// only then is its offset done. A verification's terminal envelope lists the
// ce_ids of its responses; the archiver gathers those parts (from memory, or
// from the store after a restart or a rebalance), stores the evidence
// document, and publishes the record. Every write is to a deterministic key
// and skipped when the key exists, so re-processing after a crash writes
// nothing new and publishes an identical record with the same ce_id.
package archiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/faceharvest/faceharvest/pkg/objstore"
)

// Config configures an Archiver: DefaultConfig has its settings' defaults,
// Validate checks them.
type Config struct {
	Store objstore.Bucket
	// HTTP downloads the vendors' media links: NewMediaClient's (the
	// strictest policy when nil).
	HTTP *http.Client
	// SpoolDir holds downloads while they are hashed and uploaded.
	SpoolDir string
	// MaxImageBytes caps an embedded image (20 MiB); MaxMediaBytes a
	// downloaded one (1 GiB).
	MaxImageBytes, MaxMediaBytes int64
	// DownloadTries (3) and DownloadTimeout (10 min) bound each link.
	DownloadTries   int
	DownloadTimeout time.Duration
	// MediaParallel is how many media items of one response are fetched and
	// stored at once (4).
	MediaParallel int
	// RetryMin and RetryMax bound the back-off of store retries (200 ms, 10 s).
	RetryMin, RetryMax time.Duration
	// Unmask publishes full names and ID numbers in records (default: masked).
	Unmask bool
	// Ledger, when set, receives each final index entry as a leaf of the
	// evidence log (contract.LedgerLeaf on the leaves topic).
	Ledger LeafWriter
	Source string // ce_source of records ("/archiver")
	// Now is the clock (the system's when nil); Metrics are registered by
	// their caller (unregistered when nil); Logger logs (nothing when nil).
	Now     func() time.Time
	Metrics *Metrics
	Logger  *slog.Logger
}

// Archiver archives responses and builds records. It is safe for concurrent
// use by goroutines working on different verifications.
type Archiver struct {
	cfg Config
	m   *Metrics
	log *slog.Logger

	mu    sync.Mutex
	parts map[string]*Part // by ce_id, until the terminal that lists it

	spoolMu      sync.Mutex
	spoolWaiting int   // media items whose last try failed on this machine
	spoolErr     error // the latest such failure
}

// New returns an Archiver. cfg's settings are used as they are: start from
// DefaultConfig (a zero setting is an error, not a default).
func New(cfg Config) (*Archiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		return nil, errors.New("archiver: no store")
	}
	if cfg.HTTP == nil {
		cfg.HTTP = NewMediaClient(MediaPolicy{})
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Archiver{cfg: cfg, m: cfg.Metrics, log: cfg.Logger, parts: map[string]*Part{}}, nil
}

// Ready fails while media items wait for the spool directory to work again.
func (a *Archiver) Ready(context.Context) error {
	a.spoolMu.Lock()
	defer a.spoolMu.Unlock()
	if a.spoolWaiting > 0 {
		return fmt.Errorf("media items waiting for the spool directory: %d; last failure: %v", a.spoolWaiting, a.spoolErr)
	}
	return nil
}

// keep holds a part in memory for its terminal. Durable parts the terminal
// never claims (a harvester that published a response twice) are evicted
// beyond a bound; parts only in memory never are (their offsets are held).
func (a *Archiver) keep(p *Part) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.parts) >= 100000 {
		for k, q := range a.parts { // arbitrary eviction: the store has them
			if q.durable {
				delete(a.parts, k)
			}
			if len(a.parts) < 90000 {
				break
			}
		}
	}
	a.parts[p.ID] = p
}

// forget drops a part from memory unless a newer copy replaced it.
func (a *Archiver) forget(p *Part) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.parts[p.ID] == p {
		delete(a.parts, p.ID)
	}
}

func (a *Archiver) take(id string) *Part {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.parts[id]
	delete(a.parts, id)
	return p
}
